/*
 * tag_request: adds attribution to upstream requests.
 *
 *   header=X-Team:ml          upstream header (repeatable)
 *   metadata=team:ml          a field of the body's "metadata" object
 *                             (repeatable; created if missing)
 *   user=$tenant              the body's "user" field
 *   override=on|off           replace the client's own metadata keys and
 *                             user field (default: on; off only fills in
 *                             what the client left out)
 *
 * Values may use $tenant and $model (the authenticated tenant, the model
 * the client asked for).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aigw_plugin.h"
#include "plugin_util.h"


typedef struct {
    char  *name;
    char  *value;
} tag_pair_t;


typedef struct {
    tag_pair_t  *headers;
    size_t       nheaders;
    tag_pair_t  *meta;
    size_t       nmeta;
    char        *user;
    int          override;
} tag_conf_t;


static void
tag_conf_free(void *conf)
{
    size_t       i;
    tag_conf_t  *cf = conf;

    for (i = 0; i < cf->nheaders; i++) {
        free(cf->headers[i].name);
        free(cf->headers[i].value);
    }
    for (i = 0; i < cf->nmeta; i++) {
        free(cf->meta[i].name);
        free(cf->meta[i].value);
    }
    free(cf->headers);
    free(cf->meta);
    free(cf->user);
    free(cf);
}


/* RFC 9110 token characters */
static int
tag_token(const char *s, size_t len)
{
    size_t  i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || strchr("!#$%&'*+-.^_`|~", s[i])))
        {
            return 0;
        }
    }

    return 1;
}


static int
tag_add_pair(tag_pair_t **list, size_t *n, const char *v, int header,
    char *err, size_t errlen)
{
    size_t       nlen;
    const char  *colon, *val;
    tag_pair_t  *p;

    colon = strchr(v, ':');
    if (colon == NULL || colon == v) {
        snprintf(err, errlen, "invalid %s \"%s\" (expected NAME:VALUE)",
                 header ? "header" : "metadata", v);
        return -1;
    }

    nlen = (size_t) (colon - v);
    val = colon + 1;
    while (*val == ' ') {
        val++;
    }

    if (header && !tag_token(v, nlen)) {
        snprintf(err, errlen, "invalid header name in \"%s\"", v);
        return -1;
    }

    if (strpbrk(val, "\r\n") != NULL) {
        snprintf(err, errlen, "invalid value in \"%s\": CR or LF", v);
        return -1;
    }

    p = realloc(*list, (*n + 1) * sizeof(tag_pair_t));
    if (p == NULL) {
        goto nomem;
    }
    *list = p;
    p = &p[*n];
    p->name = strndup(v, nlen);
    p->value = strdup(val);
    (*n)++;

    if (p->name == NULL || p->value == NULL) {
        goto nomem;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");
    return -1;
}


static int
tag_configure(const aigw_kv_t *kv, size_t n, void **conf, char *err,
    size_t errlen)
{
    size_t       i;
    tag_conf_t  *cf;

    cf = calloc(1, sizeof(tag_conf_t));
    if (cf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    cf->override = 1;

    for (i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "header") == 0) {
            if (tag_add_pair(&cf->headers, &cf->nheaders, kv[i].value, 1,
                             err, errlen) != 0)
            {
                goto failed;
            }

        } else if (strcmp(kv[i].key, "metadata") == 0) {
            if (tag_add_pair(&cf->meta, &cf->nmeta, kv[i].value, 0, err,
                             errlen) != 0)
            {
                goto failed;
            }

        } else if (strcmp(kv[i].key, "user") == 0) {
            free(cf->user);
            cf->user = strdup(kv[i].value);
            if (cf->user == NULL) {
                snprintf(err, errlen, "out of memory");
                goto failed;
            }

        } else if (strcmp(kv[i].key, "override") == 0) {
            if (pu_parse_bool(kv[i].value, &cf->override) != 0) {
                snprintf(err, errlen, "invalid override \"%s\" (on or off)",
                         kv[i].value);
                goto failed;
            }

        } else {
            snprintf(err, errlen, "unknown option \"%s\" (expected header, "
                     "metadata, user or override)", kv[i].key);
            goto failed;
        }
    }

    if (cf->nheaders == 0 && cf->nmeta == 0 && cf->user == NULL) {
        snprintf(err, errlen, "nothing to add: give header=, metadata= or "
                 "user=");
        goto failed;
    }

    *conf = cf;
    return 0;

failed:

    tag_conf_free(cf);
    return -1;
}


/* Expands $tenant and $model; returns a malloc()ed string. */
static char *
tag_expand(const char *v, const aigw_request_t *req)
{
    pu_buf_t     b;
    const char  *p, *var, *val;
    size_t       vlen;

    memset(&b, 0, sizeof(pu_buf_t));

    for (p = v; ; p = var + vlen) {
        var = strchr(p, '$');
        if (var == NULL) {
            break;
        }

        if (strncmp(var, "$tenant", 7) == 0) {
            val = req->tenant;
            vlen = 7;
        } else if (strncmp(var, "$model", 6) == 0) {
            val = req->model;
            vlen = 6;
        } else {
            val = "$";
            vlen = 1;
        }

        if (pu_buf_append(&b, p, (size_t) (var - p)) != 0
            || pu_buf_append(&b, val, strlen(val)) != 0)
        {
            goto nomem;
        }
    }

    if (pu_buf_append(&b, p, strlen(p) + 1) != 0) {
        goto nomem;
    }

    return b.data;

nomem:

    pu_buf_free(&b);
    return NULL;
}


static void
tag_on_request(void *conf, void *state, aigw_request_t *req,
    aigw_verdict_t *v)
{
    int               changed;
    char             *val;
    size_t            i;
    json_t           *meta;
    const tag_conf_t *cf = conf;

    (void) state;

    changed = 0;

    for (i = 0; i < cf->nheaders; i++) {
        val = tag_expand(cf->headers[i].value, req);
        if (val == NULL || strpbrk(val, "\r\n") != NULL
            || req->add_header(req, cf->headers[i].name, val) != 0)
        {
            free(val);
            goto failed;
        }
        free(val);
    }

    if (!json_is_object(req->body)) {
        return;
    }

    if (cf->nmeta) {
        meta = json_object_get(req->body, "metadata");
        if (!json_is_object(meta)) {
            meta = json_object();
            if (meta == NULL
                || json_object_set_new(req->body, "metadata", meta) != 0)
            {
                goto failed;
            }
        }

        for (i = 0; i < cf->nmeta; i++) {
            if (!cf->override && json_object_get(meta, cf->meta[i].name)) {
                continue;
            }

            val = tag_expand(cf->meta[i].value, req);
            if (val == NULL
                || json_object_set_new(meta, cf->meta[i].name,
                                       json_string(val)) != 0)
            {
                free(val);
                goto failed;
            }
            free(val);
            changed = 1;
        }
    }

    if (cf->user != NULL
        && (cf->override || !json_object_get(req->body, "user")))
    {
        val = tag_expand(cf->user, req);
        if (val == NULL
            || json_object_set_new(req->body, "user", json_string(val)) != 0)
        {
            free(val);
            goto failed;
        }
        free(val);
        changed = 1;
    }

    if (changed) {
        v->action = AIGW_MODIFIED;
    }

    return;

failed:

    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "tag_request could not tag the request");
}


static const aigw_plugin_t  tag_request_plugin = {
    .abi_version = AIGW_PLUGIN_ABI_VERSION,
    .name = "tag_request",
    .version = "1.0",
    .configure = tag_configure,
    .conf_free = tag_conf_free,
    .on_request = tag_on_request,
};

AIGW_PLUGIN_EXPORT(tag_request_plugin)
