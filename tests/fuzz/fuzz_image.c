/* Image decoding (PNG, JPEG, anything else) and conversion: decoded as stored, gray and
 * RGB under a 1-megapixel limit, then resized down and up as the folder loader does. */
#include <stdlib.h>

#include "data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int channels = 0; channels <= 3; channels += channels ? 2 : 1) {
        pc_image im;
        if (pc_image_decode("fuzz.img", data, size, channels, 1 << 20, &im) != PC_OK) continue;
        static const int sides[2] = {5, 48};
        for (int k = 0; k < 2; k++) {
            int s = sides[k];
            uint8_t *out = malloc((size_t)s * s * im.c);
            if (out) pc_image_resize(im.data, im.h, im.w, im.c, s, s, k, out);
            free(out);
        }
        pc_image_free(&im);
    }
    return 0;
}
