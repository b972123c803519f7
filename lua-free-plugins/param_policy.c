/*
 * param_policy: clamps or rejects request parameters.
 *
 *   max_tokens=N                     cap for max_tokens / max_completion_tokens
 *   max_tokens_action=clamp|reject   (default: clamp)
 *   max_tokens_missing=allow|inject  inject: add max_completion_tokens=N when
 *                                    the client set neither (default: allow)
 *   temperature=MIN..MAX             e.g. 0..1
 *   temperature_action=clamp|reject  (default: clamp)
 *   models=a,b,gpt-4o*               allowed models (a trailing * is a prefix)
 *   tools=name1,name2                allowed tools (function names, or the
 *                                    type of built-in tools)
 *   tenant=NAME                      this instance applies to one tenant only
 *
 * Configure it twice for a location-wide policy plus a tenant's own:
 *   ai_plugin policy      param_policy.so max_tokens=4096;
 *   ai_plugin policy_acme param_policy.so tenant=acme models=gpt-4o-mini;
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aigw_plugin.h"
#include "plugin_util.h"


typedef struct {
    char   **items;
    size_t   n;
} pp_list_t;


typedef struct {
    long long   max_tokens;          /* -1: no limit */
    int         max_tokens_reject;
    int         max_tokens_inject;
    int         has_temperature;
    double      temp_min;
    double      temp_max;
    int         temperature_reject;
    pp_list_t   models;              /* n == 0: any */
    pp_list_t   tools;
    int         has_tools;           /* tools= given (maybe empty: none) */
    char       *tenant;              /* NULL: every tenant */
} pp_conf_t;


static void
pp_list_free(pp_list_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        free(l->items[i]);
    }
    free(l->items);
}


static int
pp_list_parse(const char *v, pp_list_t *l)
{
    char        **p;
    size_t        len;
    const char   *q;

    pp_list_free(l);
    l->items = NULL;
    l->n = 0;

    for ( ;; ) {
        q = strchr(v, ',');
        len = q ? (size_t) (q - v) : strlen(v);

        if (len > 0) {
            p = realloc(l->items, (l->n + 1) * sizeof(char *));
            if (p == NULL) {
                return -1;
            }
            l->items = p;
            l->items[l->n] = strndup(v, len);
            if (l->items[l->n] == NULL) {
                return -1;
            }
            l->n++;
        }

        if (q == NULL) {
            return 0;
        }
        v = q + 1;
    }
}


static int
pp_list_has(const pp_list_t *l, const char *name)
{
    size_t  i, len;

    for (i = 0; i < l->n; i++) {
        len = strlen(l->items[i]);
        if (len && l->items[i][len - 1] == '*') {
            if (strncmp(name, l->items[i], len - 1) == 0) {
                return 1;
            }
        } else if (strcmp(name, l->items[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
pp_conf_free(void *conf)
{
    pp_conf_t  *cf = conf;

    pp_list_free(&cf->models);
    pp_list_free(&cf->tools);
    free(cf->tenant);
    free(cf);
}


static int
pp_action(const char *v, int *reject)
{
    if (strcmp(v, "clamp") == 0) {
        *reject = 0;
    } else if (strcmp(v, "reject") == 0) {
        *reject = 1;
    } else {
        return -1;
    }
    return 0;
}


static int
pp_configure(const aigw_kv_t *kv, size_t n, void **conf, char *err,
    size_t errlen)
{
    char        *end, num[32];
    size_t       i;
    pp_conf_t   *cf;
    long long    ll;
    const char  *k, *v, *dots;

    cf = calloc(1, sizeof(pp_conf_t));
    if (cf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    cf->max_tokens = -1;

    for (i = 0; i < n; i++) {
        k = kv[i].key;
        v = kv[i].value;

        if (strcmp(k, "max_tokens") == 0) {
            errno = 0;
            ll = strtoll(v, &end, 10);
            if (errno || *end || end == v || ll < 1) {
                snprintf(err, errlen, "invalid max_tokens \"%s\" (a positive "
                         "integer)", v);
                goto failed;
            }
            cf->max_tokens = ll;

        } else if (strcmp(k, "max_tokens_action") == 0) {
            if (pp_action(v, &cf->max_tokens_reject) != 0) {
                snprintf(err, errlen, "invalid max_tokens_action \"%s\" "
                         "(expected clamp or reject)", v);
                goto failed;
            }

        } else if (strcmp(k, "max_tokens_missing") == 0) {
            if (strcmp(v, "allow") == 0) {
                cf->max_tokens_inject = 0;
            } else if (strcmp(v, "inject") == 0) {
                cf->max_tokens_inject = 1;
            } else {
                snprintf(err, errlen, "invalid max_tokens_missing \"%s\" "
                         "(expected allow or inject)", v);
                goto failed;
            }

        } else if (strcmp(k, "temperature") == 0) {
            dots = strstr(v, "..");
            if (dots == NULL) {
                goto bad_temperature;
            }
            /* strtod would read "0..1" as "0." */
            if ((size_t) (dots - v) >= sizeof(num) || dots == v) {
                goto bad_temperature;
            }
            memcpy(num, v, (size_t) (dots - v));
            num[dots - v] = '\0';
            errno = 0;
            cf->temp_min = strtod(num, &end);
            if (errno || *end) {
                goto bad_temperature;
            }
            cf->temp_max = strtod(dots + 2, &end);
            if (errno || *end || end == dots + 2
                || !isfinite(cf->temp_min) || !isfinite(cf->temp_max)
                || cf->temp_min < 0 || cf->temp_min > cf->temp_max)
            {
                goto bad_temperature;
            }
            cf->has_temperature = 1;

        } else if (strcmp(k, "temperature_action") == 0) {
            if (pp_action(v, &cf->temperature_reject) != 0) {
                snprintf(err, errlen, "invalid temperature_action \"%s\" "
                         "(expected clamp or reject)", v);
                goto failed;
            }

        } else if (strcmp(k, "models") == 0) {
            if (pp_list_parse(v, &cf->models) != 0) {
                goto nomem;
            }
            if (cf->models.n == 0) {
                snprintf(err, errlen, "models= lists no model");
                goto failed;
            }

        } else if (strcmp(k, "tools") == 0) {
            if (pp_list_parse(v, &cf->tools) != 0) {
                goto nomem;
            }
            cf->has_tools = 1;

        } else if (strcmp(k, "tenant") == 0) {
            if (v[0] == '\0') {
                snprintf(err, errlen, "tenant= needs a tenant name");
                goto failed;
            }
            free(cf->tenant);
            cf->tenant = strdup(v);
            if (cf->tenant == NULL) {
                goto nomem;
            }

        } else {
            snprintf(err, errlen, "unknown option \"%s\" (expected "
                     "max_tokens, max_tokens_action, max_tokens_missing, "
                     "temperature, temperature_action, models, tools or "
                     "tenant)", k);
            goto failed;
        }
    }

    if (cf->max_tokens_inject && cf->max_tokens < 0) {
        snprintf(err, errlen, "max_tokens_missing=inject needs max_tokens=");
        goto failed;
    }

    *conf = cf;
    return 0;

bad_temperature:

    snprintf(err, errlen, "invalid temperature \"%s\" (expected MIN..MAX, "
             "e.g. 0..1)", v);
    goto failed;

nomem:

    snprintf(err, errlen, "out of memory");

failed:

    pp_conf_free(cf);
    return -1;
}


/* max_tokens and max_completion_tokens; 1 if changed, -1 if rejected */
static int
pp_max_tokens(const pp_conf_t *cf, json_t *body, aigw_verdict_t *v)
{
    int          changed, seen;
    size_t       i;
    json_t      *t;
    static const char  *names[] = { "max_tokens", "max_completion_tokens" };

    changed = 0;
    seen = 0;

    for (i = 0; i < 2; i++) {
        t = json_object_get(body, names[i]);
        if (t == NULL || json_is_null(t)) {
            continue;
        }

        seen = 1;

        if (!json_is_integer(t)) {
            continue;            /* the provider will reject a bad type */
        }

        if (json_integer_value(t) <= cf->max_tokens) {
            continue;
        }

        if (cf->max_tokens_reject) {
            aigw_verdict_reject(v, 400, "invalid_request_error",
                                "max_tokens_exceeded", names[i],
                                "%s is %lld; the most allowed here is %lld",
                                names[i], (long long) json_integer_value(t),
                                cf->max_tokens);
            return -1;
        }

        json_integer_set(t, cf->max_tokens);
        changed = 1;
    }

    if (!seen && cf->max_tokens_inject) {
        if (json_object_set_new(body, "max_completion_tokens",
                                json_integer(cf->max_tokens)) == 0)
        {
            changed = 1;
        }
    }

    return changed;
}


static int
pp_temperature(const pp_conf_t *cf, json_t *body, aigw_verdict_t *v)
{
    double   t, c;
    json_t  *j;

    j = json_object_get(body, "temperature");
    if (!json_is_number(j)) {
        return 0;
    }

    t = json_number_value(j);
    if (t >= cf->temp_min && t <= cf->temp_max) {
        return 0;
    }

    if (cf->temperature_reject) {
        aigw_verdict_reject(v, 400, "invalid_request_error", "invalid_value",
                            "temperature", "temperature must be between %g "
                            "and %g here", cf->temp_min, cf->temp_max);
        return -1;
    }

    c = t < cf->temp_min ? cf->temp_min : cf->temp_max;
    json_object_set_new(body, "temperature", json_real(c));
    return 1;
}


static int
pp_tools(const pp_conf_t *cf, json_t *body, aigw_verdict_t *v)
{
    size_t       i, k;
    json_t      *list, *tool, *fn;
    const char  *name, *field;
    static const char  *fields[] = { "tools", "functions" };

    for (k = 0; k < 2; k++) {
        field = fields[k];
        list = json_object_get(body, field);
        if (!json_is_array(list)) {
            continue;
        }

        json_array_foreach(list, i, tool) {
            fn = k == 0 ? json_object_get(tool, "function") : tool;
            name = json_string_value(json_object_get(fn, "name"));
            if (name == NULL) {
                name = json_string_value(json_object_get(tool, "name"));
            }
            if (name == NULL) {
                name = json_string_value(json_object_get(tool, "type"));
            }
            if (name == NULL) {
                name = "";
            }

            if (!pp_list_has(&cf->tools, name)) {
                aigw_verdict_reject(v, 400, "invalid_request_error",
                                    "tool_not_allowed", field,
                                    "tool \"%.100s\" is not allowed here",
                                    name);
                return -1;
            }
        }
    }

    return 0;
}


static void
pp_on_request(void *conf, void *state, aigw_request_t *req,
    aigw_verdict_t *v)
{
    int               rc, changed;
    json_t           *body;
    const char       *model;
    const pp_conf_t  *cf = conf;

    (void) state;

    if (cf->tenant != NULL && strcmp(cf->tenant, req->tenant) != 0) {
        return;
    }

    body = req->body;
    if (!json_is_object(body)) {
        return;
    }

    changed = 0;

    if (cf->models.n) {
        model = json_string_value(json_object_get(body, "model"));
        if (model == NULL) {
            model = req->model;
        }

        if (!pp_list_has(&cf->models, model)) {
            aigw_verdict_reject(v, 403, "invalid_request_error",
                                "model_not_allowed", "model",
                                "the model \"%.100s\" is not allowed here",
                                model);
            return;
        }
    }

    if (cf->has_tools && pp_tools(cf, body, v) != 0) {
        return;
    }

    if (cf->max_tokens > 0) {
        rc = pp_max_tokens(cf, body, v);
        if (rc < 0) {
            return;
        }
        changed |= rc;
    }

    if (cf->has_temperature) {
        rc = pp_temperature(cf, body, v);
        if (rc < 0) {
            return;
        }
        changed |= rc;
    }

    if (changed) {
        v->action = AIGW_MODIFIED;
    }
}


static const aigw_plugin_t  param_policy_plugin = {
    .abi_version = AIGW_PLUGIN_ABI_VERSION,
    .name = "param_policy",
    .version = "1.0",
    .configure = pp_configure,
    .conf_free = pp_conf_free,
    .on_request = pp_on_request,
};

AIGW_PLUGIN_EXPORT(param_policy_plugin)
