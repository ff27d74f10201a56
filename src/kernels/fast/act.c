/* Element-wise activation layers, vectorized: the same float expressions as the reference
 * kernels (kernels/ref/ref_impl.inc), written branch-free so the compiler turns them into
 * vector selects (this file is compiled with -fno-trapping-math); bitwise the reference
 * kernels' results. They run over whole buffers, plain or channel-blocked alike. */
#include "kernels/fast/fast.h"

void fast_hardswish_forward(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], r = v + 3.0f;
        r = r < 0.0f ? 0.0f : r;
        r = r > 6.0f ? 6.0f : r;
        y[i] = v * r / 6.0f;
    }
}

void fast_hardswish_backward(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], g = dy[i];
        float inner = g * (v / 3.0f + 0.5f);
        float outer = v < -3.0f ? 0.0f : g;
        dx[i] = v < -3.0f || v > 3.0f ? outer : inner;
    }
}
