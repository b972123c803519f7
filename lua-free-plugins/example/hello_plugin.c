/*
 * hello_plugin: a complete, minimal aigw plugin.
 *
 * Adds "X-Hello: <greeting>" to every upstream request and rejects requests
 * without a "messages" array.  Build it with one command:
 *
 *   cc -std=c11 -O2 -Wall -fPIC -shared -I/path/to/lua-free-plugins \
 *      -o hello_plugin.so hello_plugin.c -ljansson
 *
 * and declare it in nginx.conf:
 *
 *   ai_plugin hello /etc/nginx/plugins/hello_plugin.so greeting=bonjour;
 */

#define _POSIX_C_SOURCE 200809L    /* strdup */

#include <stdlib.h>
#include <string.h>

#include "aigw_plugin.h"


typedef struct {
    char  *greeting;
} hello_conf_t;


static int
hello_configure(const aigw_kv_t *kv, size_t n, void **conf, char *err,
    size_t errlen)
{
    size_t         i;
    const char    *greeting = "hello";
    hello_conf_t  *cf;

    for (i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "greeting") != 0) {
            snprintf(err, errlen, "unknown option \"%s\"", kv[i].key);
            return -1;
        }
        greeting = kv[i].value;
    }

    cf = malloc(sizeof(hello_conf_t));
    if (cf == NULL || (cf->greeting = strdup(greeting)) == NULL) {
        free(cf);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    *conf = cf;
    return 0;
}


static void
hello_conf_free(void *conf)
{
    hello_conf_t  *cf = conf;

    free(cf->greeting);
    free(cf);
}


static void
hello_on_request(void *conf, void *state, aigw_request_t *req,
    aigw_verdict_t *v)
{
    hello_conf_t  *cf = conf;

    (void) state;

    if (!json_is_array(json_object_get(req->body, "messages"))) {
        aigw_verdict_reject(v, 400, "invalid_request_error", "missing_messages",
                            "messages", "hello_plugin wants a messages array");
        return;
    }

    if (req->add_header(req, "X-Hello", cf->greeting) != 0) {
        aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                            "hello_plugin could not add its header");
    }
}


static const aigw_plugin_t  hello_plugin = {
    .abi_version = AIGW_PLUGIN_ABI_VERSION,
    .name = "hello",
    .version = "1.0",
    .configure = hello_configure,
    .conf_free = hello_conf_free,
    .on_request = hello_on_request,
};

AIGW_PLUGIN_EXPORT(hello_plugin)
