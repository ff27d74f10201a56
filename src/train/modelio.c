#include "train/modelio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/safetensors.h"
#include "onnx/onnx.h"
#include "train/settings.h"

void pc_model_meta_free(pc_model_meta *meta) {
    for (int k = 0; meta->class_names && k < meta->classes; k++) free(meta->class_names[k]);
    free(meta->class_names);
    meta->class_names = NULL;
}

char *pc_json_floats(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", (double)v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static char *json_names(char *const *names, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

/* Tensors of the model in pc_model_param_info order, plus `extra`. */
static pc_status save(const char *path, const pc_model *m, const pc_model_meta *meta,
                      const pc_st_tensor *extra, int n_extra, const pc_st_meta *extra_meta,
                      int n_extra_meta) {
    int n = pc_model_param_info(m, NULL, 0);
    pc_param_info *info = calloc(n + 1, sizeof *info);
    pc_st_tensor *t = calloc(n + n_extra + 1, sizeof *t);
    if (!info || !t) {
        free(info);
        free(t);
        return pc_fail_nomem();
    }
    pc_model_param_info(m, info, n);
    for (int i = 0; i < n; i++) {
        t[i].name = info[i].name;
        t[i].dtype = PC_F32;
        t[i].ndim = info[i].ndim;
        memcpy(t[i].shape, info[i].shape, sizeof info[i].shape);
        t[i].data = (info[i].is_buffer ? m->buffers : m->params) + info[i].offset;
    }
    if (n_extra) memcpy(t + n, extra, sizeof(pc_st_tensor) * n_extra);
    char shape[64];
    snprintf(shape, sizeof shape, "%d,%d,%d", meta->c, meta->h, meta->w);
    char *classes = json_names(meta->class_names, meta->classes);
    char *mean = pc_json_floats(meta->mean, meta->c);
    char *std = pc_json_floats(meta->std, meta->c);
    pc_st_meta md[16] = {
        {"format", "parcnn-model-1"}, {"model_name", m->name}, {"model", m->source},
        {"input_shape", shape},       {"classes", classes},    {"mean", mean},
        {"std", std}};
    int n_md = 7;
    for (int i = 0; i < n_extra_meta && n_md < 16; i++) md[n_md++] = extra_meta[i];
    pc_status st = pc_safetensors_write(path, t, n + n_extra, md, n_md);
    free(classes);
    free(mean);
    free(std);
    free(info);
    free(t);
    return st;
}

pc_status pc_model_save(const char *path, const pc_model *m, const pc_model_meta *meta) {
    return save(path, m, meta, NULL, 0, NULL, 0);
}

/* Copy every model tensor out of the file, checking names and shapes. */
static pc_status load_tensors(const char *path, const pc_st_file *f, pc_model *m) {
    int n = pc_model_param_info(m, NULL, 0);
    pc_param_info *info = calloc(n + 1, sizeof *info);
    if (!info) return pc_fail_nomem();
    pc_model_param_info(m, info, n);
    pc_status st = PC_OK;
    for (int i = 0; i < n && st == PC_OK; i++) {
        const pc_st_tensor *t = pc_st_get(f, info[i].name);
        int ok = t && t->dtype == PC_F32 && t->ndim == info[i].ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == info[i].shape[d];
        if (!ok) {
            st = pc_fail(PC_ERR_DATA, "%s: tensor %s is missing or has the wrong shape or dtype",
                         path, info[i].name);
            break;
        }
        float *dst = (info[i].is_buffer ? m->buffers : m->params) + info[i].offset;
        memcpy(dst, t->data, sizeof(float) * info[i].numel);
    }
    free(info);
    return st;
}

static pc_status parse_meta(const char *path, const pc_st_file *f, pc_model_meta *meta) {
    memset(meta, 0, sizeof *meta);
    const char *shape = pc_st_meta_get(f, "input_shape");
    const char *classes = pc_st_meta_get(f, "classes");
    const char *mean = pc_st_meta_get(f, "mean");
    const char *std = pc_st_meta_get(f, "std");
    if (!shape || !classes || !mean || !std || !pc_st_meta_get(f, "model"))
        return pc_fail(PC_ERR_DATA, "%s: not a parcnn model (metadata missing)", path);
    if (sscanf(shape, "%d,%d,%d", &meta->c, &meta->h, &meta->w) != 3 || meta->c < 1 ||
        meta->c > 4 || meta->h < 1 || meta->w < 1 || meta->h > 65536 || meta->w > 65536)
        return pc_fail(PC_ERR_DATA, "%s: bad input_shape '%s'", path, shape);
    cJSON *names = cJSON_Parse(classes);
    cJSON *jm = cJSON_Parse(mean), *js = cJSON_Parse(std);
    pc_status st = PC_OK;
    int n = cJSON_IsArray(names) ? cJSON_GetArraySize(names) : 0;
    if (n < 2 || !cJSON_IsArray(jm) || !cJSON_IsArray(js) || cJSON_GetArraySize(jm) != meta->c ||
        cJSON_GetArraySize(js) != meta->c)
        st = pc_fail(PC_ERR_DATA, "%s: bad classes, mean or std metadata", path);
    if (st == PC_OK) {
        meta->classes = n;
        meta->class_names = calloc(n, sizeof(char *));
        for (int k = 0; k < n; k++) {
            cJSON *it = cJSON_GetArrayItem(names, k);
            meta->class_names[k] = strdup(cJSON_IsString(it) ? it->valuestring : "?");
        }
        for (int c = 0; c < meta->c; c++) {
            meta->mean[c] = (float)cJSON_GetArrayItem(jm, c)->valuedouble;
            meta->std[c] = (float)cJSON_GetArrayItem(js, c)->valuedouble;
            if (!(meta->std[c] > 0)) st = pc_fail(PC_ERR_DATA, "%s: std must be positive", path);
        }
    }
    cJSON_Delete(names);
    cJSON_Delete(jm);
    cJSON_Delete(js);
    if (st != PC_OK) pc_model_meta_free(meta);
    return st;
}

pc_status pc_model_load(const char *path, pc_model **out, pc_model_meta *meta) {
    *out = NULL;
    if (pc_onnx_is_onnx_path(path)) return pc_onnx_import(path, NULL, out, meta);
    pc_st_file *f;
    PC_TRY(pc_safetensors_read(path, &f));
    pc_status st = parse_meta(path, f, meta);
    pc_model *m = NULL;
    if (st == PC_OK) {
        const char *name = pc_st_meta_get(f, "model_name");
        st = pc_model_parse(pc_st_meta_get(f, "model"), name ? name : path, meta->c, meta->h,
                            meta->w, meta->classes, 0, &m);
        if (st != PC_OK) st = pc_fail(st, "%s: its model description: %s", path, pc_last_error());
    }
    if (st == PC_OK) st = load_tensors(path, f, m);
    pc_st_close(f);
    if (st != PC_OK) {
        pc_model_free(m);
        pc_model_meta_free(meta);
        return st;
    }
    *out = m;
    return PC_OK;
}

pc_status pc_checkpoint_save(const char *path, const pc_model *m, const pc_model_meta *meta,
                             const pc_checkpoint_info *info) {
    pc_st_tensor extra[3];
    int n_extra = 0;
    if (info->opt_state_n)
        extra[n_extra++] = (pc_st_tensor){.name = "optimizer.state", .dtype = PC_F32, .ndim = 1,
                                          .shape = {info->opt_state_n}, .data = info->opt_state};
    if (info->ema_params)
        extra[n_extra++] = (pc_st_tensor){.name = "ema.params", .dtype = PC_F32, .ndim = 1,
                                          .shape = {m->n_params}, .data = info->ema_params};
    if (info->ema_params && m->n_buffers) /* models without batch norm have none */
        extra[n_extra++] = (pc_st_tensor){.name = "ema.buffers", .dtype = PC_F32, .ndim = 1,
                                          .shape = {m->n_buffers}, .data = info->ema_buffers};
    char step[32], seed[32];
    snprintf(step, sizeof step, "%lld", (long long)info->step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)info->seed);
    char progress[96]; /* %a: the loss sum read back bit for bit */
    snprintf(progress, sizeof progress, "%a %lld %lld", info->epoch_loss,
             (long long)info->epoch_correct, (long long)info->epoch_seen);
    pc_st_meta md[6] = {{"step", step}, {"seed", seed}, {"fingerprint", info->fingerprint},
                        {"last_epoch", info->last_epoch ? info->last_epoch : ""},
                        {"epoch_progress", progress}, {"early_stop", info->early_stop}};
    return save(path, m, meta, extra, n_extra, md, info->early_stop ? 6 : 5);
}

/* Copy the 1-d tensor `name` of n floats into dst. */
static pc_status load_flat(const char *path, const pc_st_file *f, const char *name, float *dst,
                           int64_t n) {
    const pc_st_tensor *t = pc_st_get(f, name);
    if (!t || t->dtype != PC_F32 || t->ndim != 1 || t->shape[0] != n)
        return pc_fail(PC_ERR_DATA, "%s: %s missing or of the wrong size", path, name);
    memcpy(dst, t->data, sizeof(float) * n);
    return PC_OK;
}

pc_status pc_checkpoint_load(const char *path, pc_model *m, pc_checkpoint_info *info) {
    pc_st_file *f;
    PC_TRY(pc_safetensors_read(path, &f));
    pc_status st = PC_OK;
    const char *fp = pc_st_meta_get(f, "fingerprint");
    const char *step_s = pc_st_meta_get(f, "step");
    char *end = NULL;
    long long s = step_s ? strtoll(step_s, &end, 10) : -1;
    if (!fp || !step_s || *end || s < 0)
        st = pc_fail(PC_ERR_DATA, "%s: not a parcnn training checkpoint", path);
    else if (strcmp(fp, info->fingerprint) != 0)
    {
        char diff[1024];
        pc_settings_diff(fp, "the checkpoint", info->fingerprint, "this run", diff, sizeof diff);
        st = pc_fail(PC_ERR_USAGE, "%s: was written with other settings: %s", path, diff);
    }
    if (st == PC_OK) st = load_tensors(path, f, m);
    if (st == PC_OK && info->opt_state_n)
        st = load_flat(path, f, "optimizer.state", info->opt_state, info->opt_state_n);
    if (st == PC_OK && info->ema_params)
        st = load_flat(path, f, "ema.params", info->ema_params, m->n_params);
    if (st == PC_OK && info->ema_buffers && m->n_buffers)
        st = load_flat(path, f, "ema.buffers", info->ema_buffers, m->n_buffers);
    const char *progress = pc_st_meta_get(f, "epoch_progress");
    long long pc = 0, ps = 0;
    info->epoch_loss = 0;
    if (progress && sscanf(progress, "%la %lld %lld", &info->epoch_loss, &pc, &ps) != 3)
        st = pc_fail(PC_ERR_DATA, "%s: bad epoch_progress '%.40s'", path, progress);
    info->epoch_correct = pc;
    info->epoch_seen = ps;
    const char *last = pc_st_meta_get(f, "last_epoch");
    info->last_epoch = NULL;
    if (st == PC_OK && last && last[0] && !(info->last_epoch = strdup(last)))
        st = pc_fail_nomem();
    const char *early = pc_st_meta_get(f, "early_stop");
    info->early_stop = NULL;
    if (st == PC_OK && early && !(info->early_stop = strdup(early)))
        st = pc_fail_nomem();
    if (st == PC_OK) info->step = s;
    pc_st_close(f);
    return st;
}
