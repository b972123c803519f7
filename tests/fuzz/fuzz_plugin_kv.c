
/*
 * Plugin arguments (the key=value words of `ai_plugin NAME PATH ...;`):
 * aigw_kv_parse() on the payload cut into words at '\n' (a word may hold
 * anything else, '=' and spaces included).  On success each pair must
 * give back its word as key "=" value, with a key of [A-Za-z0-9_-]+; on
 * failure the message is set and nothing is left allocated.
 */

#include "aigw_plugin_host.h"
#include "fuzz_common.h"


#define FUZZ_MAX_ARGS  64


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    char        *copy, *p, *nl, *store, err[256];
    size_t       n, i, klen;
    aigw_kv_t   *kv;
    const char  *args[FUZZ_MAX_ARGS];

    copy = fuzz_strdup(data, size);

    n = 0;
    p = copy;

    while (n < FUZZ_MAX_ARGS) {
        args[n++] = p;
        nl = strchr(p, '\n');

        if (nl == NULL) {
            break;
        }

        *nl = '\0';
        p = nl + 1;
    }

    err[0] = '\0';
    rc = aigw_kv_parse(args, n, &kv, &store, err, sizeof(err));

    if (rc == 0) {
        FUZZ_CHECK(kv != NULL && store != NULL);

        for (i = 0; i < n; i++) {
            klen = strlen(kv[i].key);
            FUZZ_CHECK(klen > 0);
            FUZZ_CHECK(strspn(kv[i].key, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
                       == klen);
            FUZZ_CHECK(strncmp(args[i], kv[i].key, klen) == 0);
            FUZZ_CHECK(args[i][klen] == '=');
            FUZZ_CHECK(strcmp(args[i] + klen + 1, kv[i].value) == 0);
        }

        free(kv);
        free(store);

    } else {
        FUZZ_CHECK(kv == NULL && store == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    }

    free(copy);

    return 0;
}
