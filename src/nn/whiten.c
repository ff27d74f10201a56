/* Patch-whitening initialization of a first convolution (airbench, Page's
 * "How to train your ResNet"): the filters decorrelate the image patches they see. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

/* Second moments E[p p^T] of all kh x kw patches (stride 1, no padding) of the images;
 * p: room for one patch. */
static void patch_moments(const pc_layer *l, int c, int h, int w, const float *images,
                          int64_t n, double *p, double *cov) {
    int d = c * l->kh * l->kw, oh = h - l->kh + 1, ow = w - l->kw + 1;
    memset(cov, 0, sizeof(double) * d * d);
    for (int64_t s = 0; s < n; s++) {
        const float *img = images + s * c * h * w;
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                int k = 0;
                for (int ci = 0; ci < c; ci++)
                    for (int dy = 0; dy < l->kh; dy++)
                        for (int dx = 0; dx < l->kw; dx++)
                            p[k++] = img[((int64_t)ci * h + y + dy) * w + x + dx];
                for (int i = 0; i < d; i++)
                    for (int j = i; j < d; j++) cov[i * d + j] += p[i] * p[j];
            }
    }
    double count = (double)n * oh * ow;
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) cov[j * d + i] = cov[i * d + j] /= count;
}

/* Cyclic Jacobi rotations: a (d x d, symmetric) ends diagonal with the eigenvalues,
 * v's columns are the eigenvectors. Plenty accurate for the small d of a patch. */
static void jacobi_eigen(double *a, double *v, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) v[i * d + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                total += a[i * d + j] * a[i * d + j];
                if (i != j) off += a[i * d + j] * a[i * d + j];
            }
        if (off <= 1e-30 * total) return;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double apq = a[p * d + q];
                if (apq == 0) continue;
                double theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int k = 0; k < d; k++) { /* a = a J: columns p and q */
                    double akp = a[k * d + p], akq = a[k * d + q];
                    a[k * d + p] = cs * akp - sn * akq;
                    a[k * d + q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < d; k++) { /* a = J^T a: rows p and q */
                    double apk = a[p * d + k], aqk = a[q * d + k];
                    a[p * d + k] = cs * apk - sn * aqk;
                    a[q * d + k] = sn * apk + cs * aqk;
                }
                for (int k = 0; k < d; k++) {
                    double vkp = v[k * d + p], vkq = v[k * d + q];
                    v[k * d + p] = cs * vkp - sn * vkq;
                    v[k * d + q] = sn * vkp + cs * vkq;
                }
            }
    }
}

pc_status pc_model_whiten(pc_model *m, int layer, const float *images, int64_t n, float eps) {
    const pc_layer *l = &m->layers[layer];
    const pc_layer *in = &m->layers[0];
    if (l->kind != PC_L_CONV || l->inputs[0] != 0 || n <= 0)
        return pc_fail(PC_ERR_USAGE, "init=whiten: layer %s is not a conv on the images", l->name);
    int d = in->c * l->kh * l->kw;
    double *cov = malloc(sizeof(double) * d * d), *vec = malloc(sizeof(double) * d * d);
    double *patch = malloc(sizeof(double) * d);
    int *order = malloc(sizeof(int) * d);
    if (!cov || !vec || !patch || !order) {
        free(cov), free(vec), free(patch), free(order);
        return pc_fail_nomem();
    }
    patch_moments(l, in->c, in->h, in->w, images, n, patch, cov);
    free(patch);
    jacobi_eigen(cov, vec, d);
    for (int i = 0; i < d; i++) order[i] = i;
    for (int i = 1; i < d; i++) /* insertion sort, largest eigenvalue first */
        for (int j = i; j > 0 && cov[order[j] * (d + 1)] > cov[order[j - 1] * (d + 1)]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    float *w = m->params + l->weight_off;
    for (int f = 0; f < d; f++) {
        int e = order[f];
        double lambda = cov[e * (d + 1)];
        double scale = 1 / sqrt((lambda > 0 ? lambda : 0) + eps);
        for (int k = 0; k < d; k++) {
            w[(int64_t)f * d + k] = (float)(vec[k * d + e] * scale);
            if (l->filters == 2 * d) w[(int64_t)(f + d) * d + k] = -w[(int64_t)f * d + k];
        }
    }
    free(cov), free(vec), free(order);
    return PC_OK;
}
