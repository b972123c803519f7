/*
 * aigw plugin host: dlopen, ABI check, option parsing, chain runner.
 */

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "aigw_plugin_host.h"


struct aigw_instance_s {
    char                 *name;
    void                 *dl;
    const aigw_plugin_t  *plugin;
    void                 *conf;
};


enum {
    AIGW_CHOICE_IDLE = 0,
    AIGW_CHOICE_STREAMING,
    AIGW_CHOICE_FLUSHED
};


struct aigw_run_s {
    const aigw_chain_t  *chain;
    aigw_request_t      *req;
    void               **state;
    unsigned char       *choices;     /* AIGW_CHOICE_* per choice index */
    size_t               nchoices;
};


typedef const aigw_plugin_t *(*aigw_entry_pt)(void);


static int
aigw_key_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


int
aigw_kv_parse(const char *const *args, size_t nargs, aigw_kv_t **kv,
    char **store, char *err, size_t errlen)
{
    size_t      i, total, len;
    char       *p, *eq, *k;
    aigw_kv_t  *out;

    *kv = NULL;
    *store = NULL;

    total = 1;
    for (i = 0; i < nargs; i++) {
        total += strlen(args[i]) + 1;
    }

    out = calloc(nargs ? nargs : 1, sizeof(aigw_kv_t));
    p = malloc(total);
    if (out == NULL || p == NULL) {
        free(out);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    *store = p;

    for (i = 0; i < nargs; i++) {
        len = strlen(args[i]);
        memcpy(p, args[i], len + 1);

        eq = strchr(p, '=');
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "bad argument \"%s\": expected key=value",
                     args[i]);
            goto failed;
        }

        for (k = p; k < eq; k++) {
            if (!aigw_key_char((unsigned char) *k)) {
                snprintf(err, errlen, "bad argument \"%s\": invalid character "
                         "in key", args[i]);
                goto failed;
            }
        }

        *eq = '\0';
        out[i].key = p;
        out[i].value = eq + 1;
        p += len + 1;
    }

    *kv = out;
    return 0;

failed:

    free(out);
    free(*store);
    *store = NULL;
    return -1;
}


aigw_instance_t *
aigw_instance_load(const char *name, const char *path,
    const char *const *args, size_t nargs, char *err, size_t errlen)
{
    char              msg[512], *store;
    const char       *dlmsg;
    aigw_kv_t        *kv;
    aigw_entry_pt     entry;
    aigw_instance_t  *inst;

    inst = calloc(1, sizeof(aigw_instance_t));
    if (inst == NULL || (inst->name = strdup(name)) == NULL) {
        free(inst);
        snprintf(err, errlen, "plugin \"%s\": out of memory", name);
        return NULL;
    }

    inst->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (inst->dl == NULL) {
        dlmsg = dlerror();
        snprintf(err, errlen, "plugin \"%s\": cannot load \"%s\": %s", name,
                 path, dlmsg ? dlmsg : "unknown error");
        goto failed;
    }

    /* ISO C forbids object-to-function pointer casts; POSIX allows this. */
    *(void **) &entry = dlsym(inst->dl, AIGW_PLUGIN_SYMBOL);
    if (entry == NULL) {
        snprintf(err, errlen, "plugin \"%s\": \"%s\" does not export %s() "
                 "(not an aigw plugin?)", name, path, AIGW_PLUGIN_SYMBOL);
        goto failed;
    }

    inst->plugin = entry();
    if (inst->plugin == NULL) {
        snprintf(err, errlen, "plugin \"%s\": %s() in \"%s\" returned NULL",
                 name, AIGW_PLUGIN_SYMBOL, path);
        goto failed;
    }

    if (inst->plugin->abi_version != AIGW_PLUGIN_ABI_VERSION) {
        snprintf(err, errlen, "plugin \"%s\": \"%s\" was built for plugin "
                 "ABI %u, this gateway speaks %u; rebuild it against this "
                 "aigw_plugin.h", name, path, inst->plugin->abi_version,
                 (unsigned) AIGW_PLUGIN_ABI_VERSION);
        goto failed;
    }

    if (aigw_kv_parse(args, nargs, &kv, &store, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "plugin \"%s\" (%s): %s", name,
                 inst->plugin->name, msg);
        goto failed;
    }

    if (inst->plugin->configure != NULL) {
        msg[0] = '\0';
        if (inst->plugin->configure(kv, nargs, &inst->conf, msg, sizeof(msg))
            != 0)
        {
            msg[sizeof(msg) - 1] = '\0';
            snprintf(err, errlen, "plugin \"%s\" (%s): %s", name,
                     inst->plugin->name,
                     msg[0] ? msg : "invalid configuration");
            free(kv);
            free(store);
            inst->conf = NULL;
            goto failed;
        }

    } else if (nargs > 0) {
        snprintf(err, errlen, "plugin \"%s\" (%s): takes no options, got "
                 "\"%s\"", name, inst->plugin->name, kv[0].key);
        free(kv);
        free(store);
        goto failed;
    }

    free(kv);
    free(store);
    return inst;

failed:

    aigw_instance_free(inst);
    return NULL;
}


void
aigw_instance_free(aigw_instance_t *inst)
{
    if (inst == NULL) {
        return;
    }

    if (inst->conf != NULL && inst->plugin->conf_free != NULL) {
        inst->plugin->conf_free(inst->conf);
    }

    if (inst->dl != NULL) {
        dlclose(inst->dl);
    }

    free(inst->name);
    free(inst);
}


const char *
aigw_instance_name(const aigw_instance_t *inst)
{
    return inst->name;
}


const aigw_plugin_t *
aigw_instance_plugin(const aigw_instance_t *inst)
{
    return inst->plugin;
}


aigw_run_t *
aigw_run_start(const aigw_chain_t *chain, aigw_request_t *req,
    aigw_verdict_t *v)
{
    size_t            i;
    aigw_run_t       *run;
    aigw_instance_t  *inst;

    run = calloc(1, sizeof(aigw_run_t));
    if (run == NULL) {
        goto nomem;
    }

    run->chain = chain;
    run->req = req;
    run->state = calloc(chain->n ? chain->n : 1, sizeof(void *));
    if (run->state == NULL) {
        free(run);
        goto nomem;
    }

    for (i = 0; i < chain->n; i++) {
        inst = chain->inst[i];
        if (inst->plugin->request_start != NULL
            && inst->plugin->request_start(inst->conf, req, &run->state[i])
               != 0)
        {
            while (i-- > 0) {
                inst = chain->inst[i];
                if (inst->plugin->request_end != NULL) {
                    inst->plugin->request_end(inst->conf, run->state[i]);
                }
            }

            free(run->state);
            free(run);
            goto nomem;
        }
    }

    return run;

nomem:

    memset(v, 0, sizeof(aigw_verdict_t));
    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "the gateway could not start its request plugins");
    return NULL;
}


/* a verdict is 700 bytes: on the per-delta path, reset it, don't zero it */
static void
aigw_verdict_reset(aigw_verdict_t *v)
{
    v->action = AIGW_PASS;
    v->status = 0;
    v->type[0] = '\0';
    v->code[0] = '\0';
    v->param[0] = '\0';
    v->message[0] = '\0';
}


static void
aigw_verdict_defaults(aigw_verdict_t *v)
{
    if (v->status < 400 || v->status > 599) {
        v->status = 400;
    }

    if (v->type[0] == '\0') {
        snprintf(v->type, sizeof(v->type), "invalid_request_error");
    }

    v->message[sizeof(v->message) - 1] = '\0';
}


aigw_action_t
aigw_run_request(aigw_run_t *run, aigw_verdict_t *v)
{
    size_t            i;
    aigw_action_t     rc;
    aigw_instance_t  *inst;

    rc = AIGW_PASS;

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->on_request == NULL) {
            continue;
        }

        aigw_verdict_reset(v);
        inst->plugin->on_request(inst->conf, run->state[i], run->req, v);

        if (v->action == AIGW_REJECT) {
            aigw_verdict_defaults(v);
            return AIGW_REJECT;
        }

        if (v->action == AIGW_MODIFIED) {
            rc = AIGW_MODIFIED;
        }
    }

    aigw_verdict_reset(v);
    return rc;
}


static int
aigw_run_mark(aigw_run_t *run, unsigned choice, unsigned char mark)
{
    size_t          n;
    unsigned char  *p;

    if (choice >= run->nchoices) {
        n = (size_t) choice + 8;
        p = realloc(run->choices, n);
        if (p == NULL) {
            return -1;
        }
        memset(p + run->nchoices, AIGW_CHOICE_IDLE, n - run->nchoices);
        run->choices = p;
        run->nchoices = n;
    }

    run->choices[choice] = mark;
    return 0;
}


static aigw_action_t
aigw_run_text(aigw_run_t *run, unsigned choice, int flush, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    size_t               i;
    aigw_action_t        rc;
    aigw_delta_t         d;
    aigw_instance_t     *inst;
    const aigw_plugin_t *p;

    rc = AIGW_PASS;

    if (aigw_run_mark(run, choice,
                      flush ? AIGW_CHOICE_FLUSHED : AIGW_CHOICE_STREAMING)
        != 0)
    {
        aigw_verdict_reset(v);
        aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                            "the gateway ran out of memory");
        return AIGW_REJECT;
    }

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        p = inst->plugin;

        memset(&d, 0, sizeof(aigw_delta_t));
        d.req = run->req;
        d.choice = choice;
        d.streamed = run->req->stream;
        d.text = text;
        d.len = len;

        aigw_verdict_reset(v);

        if (flush && p->on_delta_flush != NULL) {
            p->on_delta_flush(inst->conf, run->state[i], &d, v);

        } else if (p->on_delta != NULL && len > 0) {
            /* nothing to pass on: a plugin that holds back text has had it,
             * and one without a flush hook holds nothing */
            p->on_delta(inst->conf, run->state[i], &d, v);

        } else {
            continue;
        }

        if (v->action == AIGW_REJECT) {
            aigw_verdict_defaults(v);
            *out = NULL;
            *out_len = 0;
            return AIGW_REJECT;
        }

        if (v->action == AIGW_MODIFIED) {
            text = d.out != NULL ? d.out : "";
            len = d.out != NULL ? d.out_len : 0;
            rc = AIGW_MODIFIED;
        }
    }

    aigw_verdict_reset(v);
    *out = text;
    *out_len = len;
    return rc;
}


aigw_action_t
aigw_run_delta(aigw_run_t *run, unsigned choice, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    return aigw_run_text(run, choice, 0, text, len, out, out_len, v);
}


aigw_action_t
aigw_run_delta_flush(aigw_run_t *run, unsigned choice, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    return aigw_run_text(run, choice, 1, text, len, out, out_len, v);
}


int
aigw_run_unflushed_choice(const aigw_run_t *run)
{
    size_t  i;

    for (i = 0; i < run->nchoices; i++) {
        if (run->choices[i] == AIGW_CHOICE_STREAMING) {
            return (int) i;
        }
    }

    return -1;
}


void
aigw_run_response(aigw_run_t *run, const aigw_response_info_t *info)
{
    size_t            i;
    aigw_instance_t  *inst;

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->on_response != NULL) {
            inst->plugin->on_response(inst->conf, run->state[i], info);
        }
    }
}


void
aigw_run_end(aigw_run_t *run)
{
    size_t            i;
    aigw_instance_t  *inst;

    if (run == NULL) {
        return;
    }

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->request_end != NULL) {
            inst->plugin->request_end(inst->conf, run->state[i]);
        }
    }

    free(run->choices);
    free(run->state);
    free(run);
}


size_t
aigw_verdict_error_body(const aigw_verdict_t *v, char *buf, size_t buflen)
{
    char    *s;
    size_t   n;
    json_t  *body;

    body = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error",
                     "message", v->message,
                     "type", v->type[0] ? v->type : "invalid_request_error",
                     "param", v->param[0] ? json_string(v->param) : json_null(),
                     "code", v->code[0] ? json_string(v->code) : json_null());
    s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);

    if (s == NULL) {
        s = strdup("{\"error\":{\"message\":\"request rejected\","
                   "\"type\":\"invalid_request_error\",\"param\":null,"
                   "\"code\":null}}");
        if (s == NULL) {
            if (buflen) {
                buf[0] = '\0';
            }
            return 0;
        }
    }

    n = strlen(s);
    if (buflen) {
        snprintf(buf, buflen, "%s", s);
    }
    free(s);
    return n;
}
