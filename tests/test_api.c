/* The public API (include/parcnn.h): settings by flag name with the command line's checks
 * and messages; models created, saved and loaded predict the same bytes; training
 * through the API gives a model whose predictions do not depend on the worker count and
 * leaves no temporary directory; bad input gives an error status and a message. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "parcnn.h"

static int has(const char *needle) { return strstr(parcnn_last_error(), needle) != NULL; }

static void test_config(void) {
    parcnn_config *cfg;
    CHECK(parcnn_config_create(&cfg) == PARCNN_OK, "create");
    CHECK(parcnn_config_set(cfg, "bogus", "1") == PARCNN_ERR_USAGE && has("unknown flag '--bogus'"),
          "%s", parcnn_last_error());
    CHECK(parcnn_config_set(cfg, "epochs", "0") == PARCNN_ERR_USAGE &&
              has("--epochs 0: expected an integer in [1, 100000]"),
          "%s", parcnn_last_error());
    CHECK(parcnn_config_set(cfg, "optimizer", "lion") == PARCNN_ERR_USAGE && has("--optimizer lion"),
          "%s", parcnn_last_error());
    CHECK(parcnn_config_set(cfg, "kernels", "gpu") == PARCNN_ERR_USAGE &&
              has("expected onednn or ref"), "%s", parcnn_last_error());
    CHECK(parcnn_config_set(cfg, "nesterov", "yes") == PARCNN_ERR_USAGE, "switch with a value");
    CHECK(parcnn_config_set(cfg, "lr", NULL) == PARCNN_ERR_USAGE, "value missing");
    CHECK(parcnn_config_set(cfg, "nesterov", NULL) == PARCNN_OK, "switch");
    CHECK(parcnn_config_set(cfg, "data", "mnist") == PARCNN_OK, "data");
    parcnn_config_free(cfg);
    parcnn_config_free(NULL);
}

/* Class probabilities of an image with a fixed pattern. */
static void probs_of_pattern(parcnn_model *m, float *probs) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 37 % 256);
    CHECK(parcnn_predict_pixels(m, px, probs) == PARCNN_OK, "%s", parcnn_last_error());
}

static void test_models(const char *dir) {
    parcnn_model *m, *back;
    CHECK(parcnn_model_create("no-such-model", 1, 28, 28, 10, 1, &m) != PARCNN_OK && !m &&
              has("no-such-model"),
          "%s", parcnn_last_error());
    CHECK(parcnn_model_create("simple-cnn", 1, 28, 28, 1, 1, &m) == PARCNN_ERR_USAGE, "1 class");
    if (parcnn_model_create("simple-cnn", 1, 28, 28, 10, 5, &m) != PARCNN_OK) {
        CHECK(0, "%s", parcnn_last_error());
        return;
    }
    int c, h, w;
    parcnn_model_input(m, &c, &h, &w);
    CHECK(c == 1 && h == 28 && w == 28 && parcnn_model_classes(m) == 10, "shape");
    CHECK(parcnn_model_parameters(m) > 100000, "%lld parameters",
          (long long)parcnn_model_parameters(m));
    CHECK(strcmp(parcnn_model_class_name(m, 3), "3") == 0 && !parcnn_model_class_name(m, 10),
          "class names");
    char path[512];
    snprintf(path, sizeof path, "%s/created.safetensors", dir);
    CHECK(parcnn_model_save(m, path) == PARCNN_OK, "%s", parcnn_last_error());
    CHECK(parcnn_model_load(path, &back) == PARCNN_OK, "%s", parcnn_last_error());
    float a[10], b[10];
    probs_of_pattern(m, a);
    if (back) probs_of_pattern(back, b);
    CHECK(back && memcmp(a, b, sizeof a) == 0, "saved and loaded: the same probabilities");
    float sum = 0;
    for (int k = 0; k < 10; k++) sum += a[k];
    CHECK(sum > 0.999f && sum < 1.001f, "probabilities sum to %g", sum);
    CHECK(parcnn_predict_file(m, "/nonexistent/x.png", a) == PARCNN_ERR_DATA &&
              has("/nonexistent/x.png"),
          "%s", parcnn_last_error());
    parcnn_model_free(back);
    CHECK(parcnn_model_load("/nonexistent/m.safetensors", &back) != PARCNN_OK && !back,
          "load a missing file");
    parcnn_model_free(m);
    parcnn_model_free(NULL);
}

/* Train a small run on `workers` workers; returns the trained model (or NULL). */
static parcnn_model *train(const char *workers, parcnn_train_result *r) {
    static const char *const settings[][2] = {{"limit", "256"}, {"eval-limit", "100"},
                                              {"epochs", "1"},  {"batch", "64"},
                                              {"shard-size", "16"}};
    parcnn_config *cfg;
    parcnn_model *m = NULL;
    CHECK(parcnn_config_create(&cfg) == PARCNN_OK, "create");
    for (int i = 0; i < 5; i++) parcnn_config_set(cfg, settings[i][0], settings[i][1]);
    CHECK(parcnn_config_set(cfg, "workers", workers) == PARCNN_OK, "workers");
    parcnn_config_set_log(cfg, NULL);
    CHECK(parcnn_train(cfg, r, &m) == PARCNN_OK && m, "train: %s", parcnn_last_error());
    CHECK(parcnn_config_set(cfg, "ensemble", "2") == PARCNN_OK, "ensemble");
    parcnn_model *none = NULL;
    CHECK(parcnn_train(cfg, NULL, &none) == PARCNN_ERR_USAGE && !none && has("ensemble"),
          "an ensemble gives no single model: %s", parcnn_last_error());
    parcnn_config_free(cfg);
    return m;
}

static int empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return d && n == 0;
}

static void test_train(const char *dir) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    mkdir(tmp, 0700);
    setenv("TMPDIR", tmp, 1);
    parcnn_train_result r1, r2;
    parcnn_model *m1 = train("1", &r1), *m2 = train("2", &r2);
    CHECK(empty_dir(tmp), "the temporary run directories are removed");
    CHECK(r1.epochs_run == 1 && r1.test_accuracy > 0 && r1.test_accuracy == r2.test_accuracy,
          "result: %d epochs, accuracy %g and %g", r1.epochs_run, r1.test_accuracy,
          r2.test_accuracy);
    parcnn_dataset *test = NULL;
    CHECK(parcnn_dataset_open("nope", PARCNN_TEST, &test) == PARCNN_ERR_USAGE && !test &&
              has("nope"),
          "%s", parcnn_last_error());
    CHECK(parcnn_dataset_open("fashion-mnist", PARCNN_TEST, &test) == PARCNN_OK, "%s",
          parcnn_last_error());
    if (!m1 || !m2 || !test) return;
    CHECK(parcnn_dataset_size(test) == 10000 && parcnn_dataset_classes(test) == 10 &&
              parcnn_dataset_label(test, 10000) == -1,
          "test set");
    float p1[10], p2[10];
    CHECK(parcnn_predict_sample(m1, test, 0, p1) == PARCNN_OK &&
              parcnn_predict_sample(m2, test, 0, p2) == PARCNN_OK && memcmp(p1, p2, sizeof p1) == 0,
          "1 and 2 workers: the same trained model");
    CHECK(parcnn_predict_sample(m1, test, 10000, p1) == PARCNN_ERR_USAGE, "index out of range");
    parcnn_metrics mt;
    CHECK(parcnn_evaluate(m1, test, &mt) == PARCNN_OK && mt.samples == 10000 &&
              mt.accuracy > 0.3 && mt.accuracy <= 1 && mt.loss > 0 && mt.macro_f1 > 0,
          "evaluate: %lld samples, accuracy %g", (long long)mt.samples, mt.accuracy);
    CHECK(strcmp(parcnn_model_class_name(m1, 9), "Ankle boot") == 0, "class names of the data");
    parcnn_model *rgb;
    if (parcnn_model_create("simple-cnn", 3, 32, 32, 10, 1, &rgb) == PARCNN_OK) {
        CHECK(parcnn_evaluate(rgb, test, &mt) == PARCNN_ERR_USAGE && has("3x32x32"), "%s",
              parcnn_last_error());
        parcnn_model_free(rgb);
    }
    parcnn_dataset_close(test);
    parcnn_model_free(m1);
    parcnn_model_free(m2);
}

int main(void) {
    char dir[] = "/tmp/parcnn-test-api-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    CHECK(parcnn_version()[0] >= '0' && parcnn_version()[0] <= '9', "%s", parcnn_version());
    test_config();
    test_models(dir);
    test_train(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
