/* Train a small classifier on Fashion-MNIST through parcnn's public API, evaluate it on
 * the test set, and classify a few test samples and image files.
 *
 *   cc train_predict.c $(pkg-config --cflags --libs parcnn) -o train_predict
 *   ./train_predict OUT_DIR [IMAGE...]
 *
 * OUT_DIR receives the run (metrics.jsonl, model.safetensors, ...); the model is saved
 * again as OUT_DIR/api-model.safetensors through parcnn_model_save. */
#include <stdio.h>
#include <stdlib.h>

#include <parcnn.h>

static int check(parcnn_status st, const char *what) {
    if (st != PARCNN_OK) fprintf(stderr, "train_predict: %s: %s\n", what, parcnn_last_error());
    return st != PARCNN_OK;
}

/* Print the most likely class of probs and its probability. */
static void print_top(const parcnn_model *model, const char *label, const float *probs) {
    int best = 0;
    for (int k = 1; k < parcnn_model_classes(model); k++)
        if (probs[k] > probs[best]) best = k;
    printf("%s: %s %.4f\n", label, parcnn_model_class_name(model, best), probs[best]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: train_predict OUT_DIR [IMAGE...]\n");
        return 2;
    }
    printf("parcnn %s\n", parcnn_version());

    /* Any `parcnn train` flag, by name and as on the command line. */
    static const char *const settings[][2] = {
        {"data", "fashion-mnist"}, {"model", "simple-cnn"}, {"epochs", "1"},
        {"limit", "4096"},         {"eval-limit", "1000"},  {"seed", "7"}};
    parcnn_config *cfg;
    if (check(parcnn_config_create(&cfg), "config")) return 1;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (check(parcnn_config_set(cfg, settings[i][0], settings[i][1]), settings[i][0])) return 1;
    if (check(parcnn_config_set(cfg, "out", argv[1]), "out")) return 1;
    parcnn_config_set_log(cfg, NULL);

    parcnn_train_result result;
    parcnn_model *model;
    int failed = check(parcnn_train(cfg, &result, &model), "train");
    parcnn_config_free(cfg);
    if (failed) return 1;
    printf("trained %lld parameters: %d epoch(s), test accuracy %.4f on the first 1000\n",
           (long long)parcnn_model_parameters(model), result.epochs_run, result.test_accuracy);

    parcnn_dataset *test;
    if (check(parcnn_dataset_open("fashion-mnist", PARCNN_TEST, &test), "data")) return 1;
    parcnn_metrics m;
    if (check(parcnn_evaluate(model, test, &m), "evaluate")) return 1;
    printf("test set: %lld samples, accuracy %.4f, loss %.4f, macro F1 %.4f\n",
           (long long)m.samples, m.accuracy, m.loss, m.macro_f1);

    float *probs = malloc(sizeof(float) * (size_t)parcnn_model_classes(model));
    if (!probs) return 1;
    for (int64_t i = 0; i < 3; i++) {
        char label[64];
        if (check(parcnn_predict_sample(model, test, i, probs), "predict")) return 1;
        snprintf(label, sizeof label, "sample %lld (true: %s)", (long long)i,
                 parcnn_model_class_name(model, parcnn_dataset_label(test, i)));
        print_top(model, label, probs);
    }
    for (int a = 2; a < argc; a++) {
        if (check(parcnn_predict_file(model, argv[a], probs), argv[a])) return 1;
        print_top(model, argv[a], probs);
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/api-model.safetensors", argv[1]);
    if (check(parcnn_model_save(model, path), "save")) return 1;
    free(probs);
    parcnn_dataset_close(test);
    parcnn_model_free(model);
    return 0;
}
