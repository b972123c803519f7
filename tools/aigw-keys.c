
/*
 * aigw-keys: the operator's tool for aigw's virtual keys.
 *
 * Creates keys (printed once, stored as SHA-256 digests), revokes and
 * lists them, in the tenants file or in Redis, and shows a tenant's usage
 * counters in Redis against its limits.  See docs/tenants.md.
 *
 * Exit status: 0 done, 1 failed (file, validation, Redis, not found),
 * 2 bad command line.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ai_tenants.h"


#define KEYS_OK         0
#define KEYS_FAILED     1
#define KEYS_USAGE      2

#define KEY_PREFIX      "aigw-"
#define KEY_RANDOM_LEN  40
#define KEY_LEN         (sizeof(KEY_PREFIX) - 1 + KEY_RANDOM_LEN)

#define JSON_FLAGS      (JSON_INDENT(2) | JSON_REAL_PRECISION(15))


enum {
    OPT_FILE = 256,
    OPT_REDIS,
    OPT_PREFIX,
    OPT_TENANT,
    OPT_ID,
    OPT_EXPIRES,
    OPT_DESCRIPTION,
    OPT_CREATE_TENANT,
    OPT_TIMEOUT,
    OPT_HELP,
    OPT_LIMIT               /* + index into limit_opts */
};

#define BIT(o)  (1u << ((o) - OPT_FILE))
#define LIMITS_BIT  BIT(OPT_LIMIT)


typedef struct {
    const char  *name;          /* the field in the tenants file */
    const char  *opt;
    const char  *alias;
    int          money;
} limit_opt_t;


static const limit_opt_t  limit_opts[] = {
    { "requests_per_minute", "requests-per-minute", "rpm", 0 },
    { "tokens_per_minute", "tokens-per-minute", "tpm", 0 },
    { "concurrent", "concurrent", NULL, 0 },
    { "tokens_per_day", "tokens-per-day", "tpd", 0 },
    { "tokens_per_month", "tokens-per-month", NULL, 0 },
    { "budget_per_day", "budget-per-day", NULL, 1 },
    { "budget_per_month", "budget-per-month", NULL, 1 },
    { NULL, NULL, NULL, 0 }
};


typedef struct {
    const char  *file;
    const char  *redis;
    const char  *prefix;
    const char  *tenant;
    const char  *id;
    const char  *description;
    time_t       expires;
    int          create_tenant;
    double       timeout;
    json_t      *limits;        /* an object; empty when none given */
    unsigned     seen;
} opts_t;


typedef struct {
    const char  *name;
    int        (*run)(opts_t *o);
    unsigned     allowed;
    const char  *usage;
} command_t;


static int cmd_create(opts_t *o);
static int cmd_revoke(opts_t *o);
static int cmd_list(opts_t *o);
static int cmd_usage(opts_t *o);
static int cmd_check(opts_t *o);


static const command_t  commands[] = {

    { "create", cmd_create,
      BIT(OPT_FILE) | BIT(OPT_REDIS) | BIT(OPT_PREFIX) | BIT(OPT_TENANT)
      | BIT(OPT_ID) | BIT(OPT_EXPIRES) | BIT(OPT_DESCRIPTION)
      | BIT(OPT_CREATE_TENANT) | BIT(OPT_TIMEOUT) | LIMITS_BIT,
      "usage: aigw-keys create (--file F | --redis URL) --tenant T [options]\n"
      "\n"
      "Creates a key, prints it once on stdout and stores only its SHA-256.\n"
      "\n"
      "  --file F            the tenants file (rewritten atomically)\n"
      "  --redis URL         the Redis key store: redis://[:pass@]host[:port]"
      "[/db]\n"
      "                      or unix:/path/to/socket\n"
      "  --prefix P          Redis key prefix (default: aigw)\n"
      "  --tenant T          the tenant the key belongs to\n"
      "  --id ID             the key's name in logs and usage (default: "
      "key-<random>)\n"
      "  --expires WHEN      RFC 3339 time (2027-01-01T00:00:00Z), or <N>d, "
      "<N>h\n"
      "                      from now, or never (the default)\n"
      "  --description TEXT  a note for people\n"
      "  --create-tenant     create the tenant (and the file) if missing\n"
      "  --timeout SECONDS   Redis connect and command timeout (default: 5)\n"
      "  per-key limits, any subset:\n"
      "    --requests-per-minute N (--rpm)   --tokens-per-minute N (--tpm)\n"
      "    --concurrent N                    --tokens-per-day N (--tpd)\n"
      "    --tokens-per-month N\n"
      "    --budget-per-day USD              --budget-per-month USD\n"
      "\n"
      "Run `nginx -s reload` afterwards for a file store.\n" },

    { "revoke", cmd_revoke,
      BIT(OPT_FILE) | BIT(OPT_REDIS) | BIT(OPT_PREFIX) | BIT(OPT_TENANT)
      | BIT(OPT_ID) | BIT(OPT_TIMEOUT),
      "usage: aigw-keys revoke (--file F | --redis URL) --tenant T --id ID\n"
      "\n"
      "Marks the key revoked; the gateway answers 401 for it from then on\n"
      "(after `nginx -s reload` for a file store).\n"
      "\n"
      "  --prefix P          Redis key prefix (default: aigw)\n"
      "  --timeout SECONDS   Redis connect and command timeout (default: 5)\n"
    },

    { "list", cmd_list,
      BIT(OPT_FILE) | BIT(OPT_REDIS) | BIT(OPT_PREFIX) | BIT(OPT_TENANT)
      | BIT(OPT_TIMEOUT),
      "usage: aigw-keys list (--file F | --redis URL) [--tenant T]\n"
      "\n"
      "Lists keys: tenant, id, digest prefix, created, expires, status.\n"
      "Keys themselves are never stored, so they are never shown.\n"
      "\n"
      "  --prefix P          Redis key prefix (default: aigw)\n"
      "  --timeout SECONDS   Redis connect and command timeout (default: 5)\n"
    },

    { "usage", cmd_usage,
      BIT(OPT_FILE) | BIT(OPT_REDIS) | BIT(OPT_PREFIX) | BIT(OPT_TENANT)
      | BIT(OPT_TIMEOUT),
      "usage: aigw-keys usage --redis URL --tenant T [--file F]\n"
      "\n"
      "Shows the tenant's usage counters for the current minute, day and\n"
      "month (tenant, per key, per model), read from Redis; with --file,\n"
      "next to the limits of the tenants file and what remains.\n"
      "\n"
      "  --prefix P          Redis key prefix (default: aigw)\n"
      "  --timeout SECONDS   Redis connect and command timeout (default: 5)\n"
    },

    { "check", cmd_check,
      BIT(OPT_FILE),
      "usage: aigw-keys check --file F\n"
      "\n"
      "Validates a tenants file as the gateway will (run it before\n"
      "`nginx -s reload`) and counts its tenants and keys.\n" },

    { NULL, NULL, 0, NULL }
};


static const char  usage_text[] =
    "usage: aigw-keys <command> [options]\n"
    "\n"
    "commands:\n"
    "  create   create a key: printed once, stored as its SHA-256\n"
    "  revoke   revoke a key\n"
    "  list     list keys (ids, digest prefixes, dates, status)\n"
    "  usage    a tenant's usage in Redis against its limits\n"
    "  check    validate a tenants file\n"
    "\n"
    "Keys live in the tenants file (--file) or in Redis (--redis URL).\n"
    "`aigw-keys <command> --help` describes a command's options.\n"
    "Exit status: 0 done, 1 failed, 2 bad command line.\n";


static void
fail(const char *fmt, ...)
{
    va_list  args;

    fputs("aigw-keys: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}


/* keys */


static void
key_generate(char key[KEY_LEN + 1])
{
    size_t         n, i;
    unsigned char  buf[64];

    static const char  b62[] = "0123456789"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "abcdefghijklmnopqrstuvwxyz";

    memcpy(key, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
    n = 0;

    while (n < KEY_RANDOM_LEN) {
        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            fail("RAND_bytes failed: no randomness, no key");
            exit(KEYS_FAILED);
        }

        /* 248 = 4 * 62: rejecting the rest keeps every digit equally likely */
        for (i = 0; i < sizeof(buf) && n < KEY_RANDOM_LEN; i++) {
            if (buf[i] < 248) {
                key[sizeof(KEY_PREFIX) - 1 + n++] = b62[buf[i] % 62];
            }
        }
    }

    key[KEY_LEN] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
}


static void
key_default_id(char id[16])
{
    unsigned char  r[5];

    if (RAND_bytes(r, sizeof(r)) != 1) {
        fail("RAND_bytes failed");
        exit(KEYS_FAILED);
    }

    memcpy(id, "key-", 4);
    ai_hex(r, sizeof(r), id + 4);
}


static const char *
key_status(int revoked, time_t expires, time_t now)
{
    if (revoked) {
        return "revoked";
    }

    if (expires != 0 && now >= expires) {
        return "expired";
    }

    return "active";
}


static void
fmt_time(time_t t, char out[21])
{
    if (t == 0) {
        strcpy(out, "-");

    } else {
        ai_time_format(t, out);
    }
}


/* the file store */


typedef struct {
    char         path[PATH_MAX];
    int          dirfd;
    int          exists;
    struct stat  st;
    json_t      *root;
} doc_t;


static int
doc_open(doc_t *d, const char *file, int allow_missing)
{
    char           err[1024], dir[PATH_MAX], *buf;
    size_t         n;
    FILE          *f;
    json_error_t   jerr;
    ai_tenants_t  *ts;

    memset(d, 0, sizeof(doc_t));
    d->dirfd = -1;

    /* write through symlinks: the link stays, its target is replaced */
    if (realpath(file, d->path) == NULL) {
        if (errno != ENOENT || !allow_missing) {
            fail("%s: %s", file, strerror(errno));
            return -1;
        }

        if (strlen(file) >= sizeof(d->path)) {
            fail("%s: path too long", file);
            return -1;
        }

        strcpy(d->path, file);
    }

    strcpy(dir, d->path);
    d->dirfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (d->dirfd == -1) {
        fail("%s: %s", dir, strerror(errno));
        return -1;
    }

    /* one editor at a time: a lock on the directory, as the file is renamed */
    if (flock(d->dirfd, LOCK_EX) != 0) {
        fail("%s: lock: %s", dir, strerror(errno));
        return -1;
    }

    f = fopen(d->path, "rb");

    if (f == NULL) {
        if (errno != ENOENT || !allow_missing) {
            fail("%s: %s", d->path, strerror(errno));
            return -1;
        }

        d->root = json_pack("{s:i, s:{}}", "version", 1, "tenants");
        return d->root ? 0 : -1;
    }

    d->exists = 1;

    if (fstat(fileno(f), &d->st) != 0) {
        fail("%s: %s", d->path, strerror(errno));
        fclose(f);
        return -1;
    }

    buf = malloc(d->st.st_size + 1);
    n = buf ? fread(buf, 1, d->st.st_size, f) : 0;
    fclose(f);

    if (buf == NULL || n != (size_t) d->st.st_size) {
        fail("%s: read failed", d->path);
        free(buf);
        return -1;
    }

    /* refuse to edit a file the gateway would refuse */
    ts = ai_tenants_parse(buf, n, err, sizeof(err));

    if (ts == NULL) {
        fail("%s: %s", d->path, err);
        free(buf);
        return -1;
    }

    ai_tenants_free(ts);

    d->root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);

    if (d->root == NULL) {
        fail("%s: %s", d->path, jerr.text);
        return -1;
    }

    return 0;
}


static void
doc_close(doc_t *d)
{
    json_decref(d->root);

    if (d->dirfd != -1) {
        close(d->dirfd);
    }
}


static int
doc_write(doc_t *d)
{
    int            fd;
    char           err[1024], tmp[PATH_MAX + 16], *text;
    size_t         len, off;
    ssize_t        n;
    ai_tenants_t  *ts;

    text = json_dumps(d->root, JSON_FLAGS);
    if (text == NULL) {
        fail("out of memory");
        return -1;
    }

    len = strlen(text);

    /* what we write must load: check it as the gateway will */
    ts = ai_tenants_parse(text, len, err, sizeof(err));

    if (ts == NULL) {
        fail("%s: the result would be invalid: %s", d->path, err);
        free(text);
        return -1;
    }

    ai_tenants_free(ts);

    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", d->path);
    fd = mkstemp(tmp);

    if (fd == -1) {
        fail("%s: %s", tmp, strerror(errno));
        free(text);
        return -1;
    }

    if (d->exists) {
        if (fchown(fd, d->st.st_uid, d->st.st_gid) != 0) {
            /* not root: the new file keeps our owner, and the mode below */
        }

        (void) fchmod(fd, d->st.st_mode & 07777);

    } else {
        (void) fchmod(fd, 0640);
    }

    text[len++] = '\n';         /* json_dumps' NUL becomes the newline */

    for (off = 0; off < len; off += n) {
        n = write(fd, text + off, len - off);

        if (n < 0) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            fail("%s: write: %s", tmp, strerror(errno));
            goto failed;
        }
    }

    if (fsync(fd) != 0) {
        fail("%s: fsync: %s", tmp, strerror(errno));
        goto failed;
    }

    if (close(fd) != 0) {
        fd = -1;
        fail("%s: close: %s", tmp, strerror(errno));
        goto failed;
    }

    fd = -1;

    if (rename(tmp, d->path) != 0) {
        fail("rename %s to %s: %s", tmp, d->path, strerror(errno));
        goto failed;
    }

    (void) fsync(d->dirfd);
    free(text);

    return 0;

failed:

    if (fd != -1) {
        close(fd);
    }

    unlink(tmp);
    free(text);

    return -1;
}


static json_t *
doc_keys(doc_t *d, const char *tenant, int create)
{
    json_t  *tenants, *t, *keys;

    tenants = json_object_get(d->root, "tenants");
    t = json_object_get(tenants, tenant);

    if (t == NULL) {
        if (!create) {
            fail("%s: no tenant \"%s\" (add --create-tenant to create it)",
                 d->path, tenant);
            return NULL;
        }

        t = json_object();
        if (t == NULL || json_object_set_new(tenants, tenant, t) != 0) {
            fail("out of memory");
            return NULL;
        }
    }

    keys = json_object_get(t, "keys");

    if (keys == NULL) {
        keys = json_array();
        if (keys == NULL || json_object_set_new(t, "keys", keys) != 0) {
            fail("out of memory");
            return NULL;
        }
    }

    return keys;
}


static json_t *
doc_find_key(json_t *keys, const char *id)
{
    size_t   i;
    json_t  *k;

    json_array_foreach(keys, i, k) {
        if (strcmp(json_string_value(json_object_get(k, "id")), id) == 0) {
            return k;
        }
    }

    return NULL;
}


/* the Redis store */


static redisContext *
redis_open(const opts_t *o)
{
    int              db, port;
    char            *url, *p, *at, *host, *pass, *user, *colon, *slash, *end;
    const char      *argv[3];
    redisReply      *r;
    redisContext    *c;
    struct timeval   tv;

    tv.tv_sec = (time_t) o->timeout;
    tv.tv_usec = (suseconds_t) ((o->timeout - (double) tv.tv_sec) * 1e6);

    url = strdup(o->redis);
    if (url == NULL) {
        return NULL;
    }

    user = NULL;
    pass = NULL;
    db = 0;

    if (strncmp(url, "unix:", 5) == 0) {
        p = url + 5;

        while (p[0] == '/' && p[1] == '/') {
            p++;
        }

        c = redisConnectUnixWithTimeout(p, tv);
        host = p;

    } else {
        p = url;

        if (strncmp(p, "redis://", 8) == 0) {
            p += 8;
        }

        at = strrchr(p, '@');

        if (at != NULL) {
            *at = '\0';
            colon = strchr(p, ':');

            if (colon != NULL) {
                *colon = '\0';
                user = *p ? p : NULL;
                pass = colon + 1;

            } else {
                pass = p;
            }

            p = at + 1;
        }

        slash = strchr(p, '/');

        if (slash != NULL) {
            *slash = '\0';

            if (slash[1] != '\0') {
                db = (int) strtol(slash + 1, &end, 10);

                if (*end != '\0' || db < 0) {
                    fail("%s: bad database number", o->redis);
                    free(url);
                    return NULL;
                }
            }
        }

        host = p;
        port = 6379;
        colon = strrchr(p, ':');

        if (colon != NULL && strchr(p, ']') < colon) {
            *colon = '\0';
            port = (int) strtol(colon + 1, &end, 10);

            if (*end != '\0' || port <= 0 || port > 65535) {
                fail("%s: bad port", o->redis);
                free(url);
                return NULL;
            }
        }

        if (host[0] == '[') {
            host++;
            host[strcspn(host, "]")] = '\0';
        }

        if (host[0] == '\0') {
            host = "127.0.0.1";
        }

        c = redisConnectWithTimeout(host, port, tv);
    }

    if (c == NULL || c->err) {
        fail("redis %s: %s", host, c ? c->errstr : "out of memory");
        goto failed;
    }

    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fail("redis: cannot set the timeout");
        goto failed;
    }

    if (pass != NULL) {
        argv[0] = "AUTH";
        argv[1] = user ? user : pass;
        argv[2] = pass;
        r = redisCommandArgv(c, user ? 3 : 2, argv, NULL);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fail("redis AUTH: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            goto failed;
        }

        freeReplyObject(r);
    }

    if (db != 0) {
        r = redisCommand(c, "SELECT %d", db);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fail("redis SELECT %d: %s", db, r ? r->str : c->errstr);
            freeReplyObject(r);
            goto failed;
        }

        freeReplyObject(r);
    }

    OPENSSL_cleanse(url, strlen(o->redis));
    free(url);

    return c;

failed:

    if (c != NULL) {
        redisFree(c);
    }

    OPENSSL_cleanse(url, strlen(o->redis));
    free(url);

    return NULL;
}


/* a reply that is not an error, or NULL after saying why */

static redisReply *
redis_check(redisContext *c, redisReply *r, const char *what)
{
    if (r == NULL) {
        fail("redis %s: %s", what, c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        fail("redis %s: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


/* the digests of a tenant's keys, with each key's hash, pipelined */

typedef struct {
    char          hex[AI_DIGEST_HEX_LEN + 1];
    redisReply   *hash;             /* HGETALL: field, value, ... */
} rkey_t;


static const char *
rkey_field(const rkey_t *k, const char *name)
{
    size_t  i;

    if (k->hash == NULL || k->hash->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }

    for (i = 0; i + 1 < k->hash->elements; i += 2) {
        if (strcmp(k->hash->element[i]->str, name) == 0) {
            return k->hash->element[i + 1]->str;
        }
    }

    return NULL;
}


static int
redis_tenant_keys(redisContext *c, const opts_t *o, const char *tenant,
    rkey_t **out, size_t *nout)
{
    size_t       i, n;
    rkey_t      *keys;
    redisReply  *set, *r;

    *out = NULL;
    *nout = 0;

    set = redis_check(c, redisCommand(c, "SMEMBERS %s:tenant:%s:keys",
                                      o->prefix, tenant), "SMEMBERS");
    if (set == NULL) {
        return -1;
    }

    n = set->elements;
    keys = calloc(n ? n : 1, sizeof(rkey_t));

    if (keys == NULL) {
        freeReplyObject(set);
        return -1;
    }

    for (i = 0; i < n; i++) {
        snprintf(keys[i].hex, sizeof(keys[i].hex), "%s", set->element[i]->str);
        redisAppendCommand(c, "HGETALL %s:key:%s", o->prefix, keys[i].hex);
    }

    freeReplyObject(set);

    for (i = 0; i < n; i++) {
        r = NULL;

        if (redisGetReply(c, (void **) &r) != REDIS_OK
            || redis_check(c, r, "HGETALL") == NULL)
        {
            for (n = 0; n < i; n++) {
                freeReplyObject(keys[n].hash);
            }

            free(keys);
            return -1;
        }

        keys[i].hash = r;
    }

    *out = keys;
    *nout = n;

    return 0;
}


static void
redis_free_keys(rkey_t *keys, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        freeReplyObject(keys[i].hash);
    }

    free(keys);
}


/* commands */


static int
cmd_create(opts_t *o)
{
    int              rc;
    char             key[KEY_LEN + 1], hex[AI_DIGEST_HEX_LEN + 1], idbuf[16];
    char             created[21], expires[32], limits_text[512], *lt;
    size_t           i, n;
    doc_t            d;
    json_t          *keys, *k;
    time_t           now;
    rkey_t          *rkeys;
    const char      *id, *argv[20];
    redisReply      *r;
    redisContext    *c;
    unsigned char    digest[AI_DIGEST_LEN];

    now = time(NULL);
    ai_time_format(now, created);

    if (o->expires != 0 && o->expires <= now) {
        fail("--expires is in the past");
        return KEYS_USAGE;
    }

    if (o->id != NULL) {
        id = o->id;

    } else {
        key_default_id(idbuf);
        id = idbuf;
    }

    limits_text[0] = '\0';

    if (json_object_size(o->limits) > 0) {
        lt = json_dumps(o->limits, JSON_COMPACT | JSON_REAL_PRECISION(15));

        if (lt == NULL || strlen(lt) >= sizeof(limits_text)) {
            fail("limits too long");
            free(lt);
            return KEYS_FAILED;
        }

        strcpy(limits_text, lt);
        free(lt);
    }

    if (o->file != NULL) {
        if (doc_open(&d, o->file, o->create_tenant) != 0) {
            doc_close(&d);
            return KEYS_FAILED;
        }

        keys = doc_keys(&d, o->tenant, o->create_tenant);

        if (keys == NULL) {
            doc_close(&d);
            return KEYS_FAILED;
        }

        if (doc_find_key(keys, id) != NULL) {
            fail("%s: tenant \"%s\" already has a key \"%s\"", d.path,
                 o->tenant, id);
            doc_close(&d);
            return KEYS_FAILED;
        }

        key_generate(key);
        ai_sha256((unsigned char *) key, KEY_LEN, digest);
        ai_hex(digest, AI_DIGEST_LEN, hex);

        k = json_pack("{s:s, s:s, s:s}", "id", id, "sha256", hex,
                      "created", created);

        if (k == NULL) {
            fail("out of memory");
            doc_close(&d);
            return KEYS_FAILED;
        }

        if (o->description != NULL) {
            json_object_set_new(k, "description",
                                json_string(o->description));
        }

        if (o->expires != 0) {
            ai_time_format(o->expires, expires);
            json_object_set_new(k, "expires", json_string(expires));
        }

        json_object_set_new(k, "revoked", json_false());

        if (json_object_size(o->limits) > 0) {
            json_object_set(k, "limits", o->limits);
        }

        json_array_append_new(keys, k);

        rc = doc_write(&d);
        doc_close(&d);

        if (rc != 0) {
            OPENSSL_cleanse(key, sizeof(key));
            return KEYS_FAILED;
        }

        printf("%s\n", key);
        fflush(stdout);
        OPENSSL_cleanse(key, sizeof(key));

        fprintf(stderr, "aigw-keys: created key \"%s\" of tenant \"%s\" "
                "(sha256 %.12s...) in %s\n"
                "aigw-keys: the key above is shown only this once; run "
                "`nginx -s reload` to load it\n", id, o->tenant, hex,
                o->file);

        return KEYS_OK;
    }

    c = redis_open(o);
    if (c == NULL) {
        return KEYS_FAILED;
    }

    if (redis_tenant_keys(c, o, o->tenant, &rkeys, &n) != 0) {
        redisFree(c);
        return KEYS_FAILED;
    }

    for (i = 0; i < n; i++) {
        const char  *kid = rkey_field(&rkeys[i], "id");

        if (kid != NULL && strcmp(kid, id) == 0) {
            fail("redis: tenant \"%s\" already has a key \"%s\"", o->tenant,
                 id);
            redis_free_keys(rkeys, n);
            redisFree(c);
            return KEYS_FAILED;
        }
    }

    redis_free_keys(rkeys, n);

    key_generate(key);
    ai_sha256((unsigned char *) key, KEY_LEN, digest);
    ai_hex(digest, AI_DIGEST_LEN, hex);

    {
        char  hkey[256], skey[256], exp_s[24], cre_s[24];

        snprintf(hkey, sizeof(hkey), "%s:key:%s", o->prefix, hex);
        snprintf(skey, sizeof(skey), "%s:tenant:%s:keys", o->prefix,
                 o->tenant);
        snprintf(exp_s, sizeof(exp_s), "%lld", (long long) o->expires);
        snprintf(cre_s, sizeof(cre_s), "%lld", (long long) now);

        n = 0;
        argv[n++] = "HSET";
        argv[n++] = hkey;
        argv[n++] = "tenant";
        argv[n++] = o->tenant;
        argv[n++] = "id";
        argv[n++] = id;
        argv[n++] = "created";
        argv[n++] = cre_s;
        argv[n++] = "expires";
        argv[n++] = exp_s;
        argv[n++] = "revoked";
        argv[n++] = "0";

        if (limits_text[0] != '\0') {
            argv[n++] = "limits";
            argv[n++] = limits_text;
        }

        if (o->description != NULL) {
            argv[n++] = "description";
            argv[n++] = o->description;
        }

        /* both or neither: the hash and its tenant's set */
        redisAppendCommand(c, "MULTI");
        redisAppendCommandArgv(c, (int) n, argv, NULL);
        redisAppendCommand(c, "SADD %s %s", skey, hex);
        redisAppendCommand(c, "EXEC");

        rc = 0;

        for (i = 0; i < 4; i++) {
            r = NULL;

            if (redisGetReply(c, (void **) &r) != REDIS_OK
                || redis_check(c, r, i == 3 ? "EXEC" : "MULTI") == NULL)
            {
                rc = -1;
                break;
            }

            if (i == 3 && r->type != REDIS_REPLY_ARRAY) {
                fail("redis EXEC: transaction aborted");
                rc = -1;
            }

            freeReplyObject(r);
        }
    }

    redisFree(c);

    if (rc != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        return KEYS_FAILED;
    }

    printf("%s\n", key);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof(key));

    fprintf(stderr, "aigw-keys: created key \"%s\" of tenant \"%s\" (sha256 "
            "%.12s...) in redis (%s:key:...)\n"
            "aigw-keys: the key above is shown only this once\n", id,
            o->tenant, hex, o->prefix);

    return KEYS_OK;
}


static int
cmd_revoke(opts_t *o)
{
    int            rc;
    char           when[24];
    size_t         i, n;
    doc_t          d;
    json_t        *keys, *k;
    rkey_t        *rkeys;
    const char    *kid, *rev;
    redisReply    *r;
    redisContext  *c;

    if (o->file != NULL) {
        if (doc_open(&d, o->file, 0) != 0) {
            doc_close(&d);
            return KEYS_FAILED;
        }

        keys = doc_keys(&d, o->tenant, 0);
        k = keys ? doc_find_key(keys, o->id) : NULL;

        if (keys != NULL && k == NULL) {
            fail("%s: tenant \"%s\" has no key \"%s\"", d.path, o->tenant,
                 o->id);
        }

        if (k == NULL) {
            doc_close(&d);
            return KEYS_FAILED;
        }

        if (json_is_true(json_object_get(k, "revoked"))) {
            fprintf(stderr, "aigw-keys: key \"%s\" of tenant \"%s\" was "
                    "already revoked\n", o->id, o->tenant);
            doc_close(&d);
            return KEYS_OK;
        }

        json_object_set_new(k, "revoked", json_true());

        rc = doc_write(&d);
        doc_close(&d);

        if (rc != 0) {
            return KEYS_FAILED;
        }

        fprintf(stderr, "aigw-keys: revoked key \"%s\" of tenant \"%s\" in "
                "%s; run `nginx -s reload` to apply it\n", o->id, o->tenant,
                o->file);

        return KEYS_OK;
    }

    c = redis_open(o);
    if (c == NULL) {
        return KEYS_FAILED;
    }

    if (redis_tenant_keys(c, o, o->tenant, &rkeys, &n) != 0) {
        redisFree(c);
        return KEYS_FAILED;
    }

    for (i = 0; i < n; i++) {
        kid = rkey_field(&rkeys[i], "id");

        if (kid != NULL && strcmp(kid, o->id) == 0) {
            break;
        }
    }

    if (i == n) {
        fail("redis: tenant \"%s\" has no key \"%s\"", o->tenant, o->id);
        redis_free_keys(rkeys, n);
        redisFree(c);
        return KEYS_FAILED;
    }

    rev = rkey_field(&rkeys[i], "revoked");

    if (rev != NULL && strcmp(rev, "1") == 0) {
        fprintf(stderr, "aigw-keys: key \"%s\" of tenant \"%s\" was already "
                "revoked\n", o->id, o->tenant);
        redis_free_keys(rkeys, n);
        redisFree(c);
        return KEYS_OK;
    }

    snprintf(when, sizeof(when), "%lld", (long long) time(NULL));

    r = redis_check(c, redisCommand(c, "HSET %s:key:%s revoked 1 "
                                    "revoked_at %s", o->prefix,
                                    rkeys[i].hex, when), "HSET");
    redis_free_keys(rkeys, n);
    redisFree(c);

    if (r == NULL) {
        return KEYS_FAILED;
    }

    freeReplyObject(r);

    fprintf(stderr, "aigw-keys: revoked key \"%s\" of tenant \"%s\" in "
            "redis\n", o->id, o->tenant);

    return KEYS_OK;
}


static void
list_header(void)
{
    printf("%-24s %-24s %-12s %-20s %-20s %s\n", "TENANT", "ID", "DIGEST",
           "CREATED", "EXPIRES", "STATUS");
}


static void
list_row(const char *tenant, const char *id, const char *prefix,
    time_t created, time_t expires, int revoked, time_t now)
{
    char  c[21], e[21];

    fmt_time(created, c);
    fmt_time(expires, e);

    printf("%-24s %-24s %-12.12s %-20s %-20s %s\n", tenant, id, prefix, c,
           expires ? e : "never", key_status(revoked, expires, now));
}


static int
list_redis_tenant(redisContext *c, const opts_t *o, const char *tenant,
    time_t now)
{
    size_t       i, n;
    rkey_t      *keys;
    const char  *v;

    if (redis_tenant_keys(c, o, tenant, &keys, &n) != 0) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        v = rkey_field(&keys[i], "revoked");

        list_row(tenant, rkey_field(&keys[i], "id")
                         ? rkey_field(&keys[i], "id") : "(missing)",
                 keys[i].hex,
                 (time_t) atoll(rkey_field(&keys[i], "created")
                                ? rkey_field(&keys[i], "created") : "0"),
                 (time_t) atoll(rkey_field(&keys[i], "expires")
                                ? rkey_field(&keys[i], "expires") : "0"),
                 v != NULL && strcmp(v, "0") != 0, now);
    }

    redis_free_keys(keys, n);

    return 0;
}


static int
cmd_list(opts_t *o)
{
    char                err[1024], prefix[13], cursor[32], *t;
    size_t              i, j, plen;
    time_t              now;
    redisReply         *r;
    redisContext       *c;
    ai_tenants_t       *ts;
    const ai_key_t     *k;
    const ai_tenant_t  *tn;

    now = time(NULL);

    if (o->file != NULL) {
        ts = ai_tenants_load(o->file, err, sizeof(err));

        if (ts == NULL) {
            fail("%s", err);
            return KEYS_FAILED;
        }

        if (o->tenant != NULL
            && ai_tenants_find(ts, o->tenant, strlen(o->tenant)) == NULL)
        {
            fail("%s: no tenant \"%s\"", o->file, o->tenant);
            ai_tenants_free(ts);
            return KEYS_FAILED;
        }

        list_header();

        for (i = 0; i < ai_tenants_count(ts); i++) {
            tn = ai_tenants_at(ts, i);

            if (o->tenant != NULL && strcmp(ai_tenant_name(tn), o->tenant)) {
                continue;
            }

            for (j = 0; j < ai_tenant_keys_count(tn); j++) {
                k = ai_tenant_key_at(tn, j);
                ai_key_digest_prefix(k, prefix);
                list_row(ai_tenant_name(tn), ai_key_id(k), prefix,
                         ai_key_created(k), ai_key_expires(k),
                         ai_key_revoked(k), now);
            }
        }

        ai_tenants_free(ts);
        return KEYS_OK;
    }

    c = redis_open(o);
    if (c == NULL) {
        return KEYS_FAILED;
    }

    list_header();

    if (o->tenant != NULL) {
        if (list_redis_tenant(c, o, o->tenant, now) != 0) {
            redisFree(c);
            return KEYS_FAILED;
        }

        redisFree(c);
        return KEYS_OK;
    }

    /* every tenant: their key sets, found with SCAN */
    strcpy(cursor, "0");
    plen = strlen(o->prefix) + sizeof(":tenant:") - 1;

    do {
        r = redis_check(c, redisCommand(c, "SCAN %s MATCH %s:tenant:*:keys "
                                        "COUNT 1000", cursor, o->prefix),
                        "SCAN");
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            redisFree(c);
            return KEYS_FAILED;
        }

        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);

        for (i = 0; i < r->element[1]->elements; i++) {
            t = r->element[1]->element[i]->str;

            if (strlen(t) <= plen + 5) {
                continue;
            }

            t = strndup(t + plen, strlen(t) - plen - 5);

            if (t == NULL || list_redis_tenant(c, o, t, now) != 0) {
                free(t);
                freeReplyObject(r);
                redisFree(c);
                return KEYS_FAILED;
            }

            free(t);
        }

        freeReplyObject(r);

    } while (strcmp(cursor, "0") != 0);

    redisFree(c);

    return KEYS_OK;
}


/* usage: the counters of <prefix>:u:<scope>:<metric>:<window> */

typedef struct {
    char      scope;            /* t, k, m */
    char      name[AI_MODEL_NAME_MAX + 1];
    char      metric[8];        /* rq, tk, cost */
    char      window;           /* m, d, M */
    int64_t   used;
    int64_t   limit;            /* AI_LIMIT_NONE when unknown */
} urow_t;


typedef struct {
    urow_t   *rows;
    size_t    n;
    size_t    cap;
    char      win[3][32];       /* the current m, d, M windows */
} usage_t;


static int
usage_window_index(char w)
{
    return w == 'm' ? 0 : (w == 'd' ? 1 : 2);
}


static urow_t *
usage_row(usage_t *u, char scope, const char *name, size_t nlen,
    const char *metric, char window)
{
    size_t   i;
    urow_t  *r;

    if (nlen > AI_MODEL_NAME_MAX || strlen(metric) >= sizeof(r->metric)) {
        return NULL;
    }

    for (i = 0; i < u->n; i++) {
        r = &u->rows[i];

        if (r->scope == scope && r->window == window
            && strcmp(r->metric, metric) == 0
            && strlen(r->name) == nlen && memcmp(r->name, name, nlen) == 0)
        {
            return r;
        }
    }

    if (u->n == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 32;
        r = realloc(u->rows, u->cap * sizeof(urow_t));
        if (r == NULL) {
            fail("out of memory");
            exit(KEYS_FAILED);
        }
        u->rows = r;
    }

    r = &u->rows[u->n++];
    memset(r, 0, sizeof(urow_t));
    r->scope = scope;
    memcpy(r->name, name, nlen);
    strcpy(r->metric, metric);
    r->window = window;
    r->limit = AI_LIMIT_NONE;

    return r;
}


static void
usage_limits(usage_t *u, char scope, const char *name, const ai_limits_t *l)
{
    size_t  i;

    static const struct {
        size_t       offset;
        const char  *metric;
        char         window;
    } map[] = {
        { offsetof(ai_limits_t, requests_per_minute), "rq", 'm' },
        { offsetof(ai_limits_t, tokens_per_minute), "tk", 'm' },
        { offsetof(ai_limits_t, tokens_per_day), "tk", 'd' },
        { offsetof(ai_limits_t, tokens_per_month), "tk", 'M' },
        { offsetof(ai_limits_t, budget_per_day_micros), "cost", 'd' },
        { offsetof(ai_limits_t, budget_per_month_micros), "cost", 'M' },
    };

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        int64_t  v = *(const int64_t *) ((const char *) l + map[i].offset);

        if (v != AI_LIMIT_NONE) {
            urow_t  *r = usage_row(u, scope, name, strlen(name),
                                   map[i].metric, map[i].window);
            if (r != NULL) {
                r->limit = v;
            }
        }
    }
}


/* "<name>:<metric>:<window>" (t scope: "<metric>:<window>") */

static void
usage_add_key(usage_t *u, char scope, const char *rest)
{
    const char  *w, *m;
    char         metric[8];
    size_t       mlen;

    w = strrchr(rest, ':');

    if (w == NULL) {
        return;
    }

    if (strcmp(w + 1, u->win[usage_window_index(w[1])]) != 0) {
        return;                                 /* not the current window */
    }

    for (m = w - 1; m >= rest && *m != ':'; m--) { /* void */ }

    mlen = w - (m + 1);

    if (mlen == 0 || mlen >= sizeof(metric)) {
        return;
    }

    memcpy(metric, m + 1, mlen);
    metric[mlen] = '\0';

    if (scope == 't') {
        if (m >= rest) {
            return;
        }

        usage_row(u, 't', "", 0, metric, w[1]);
        return;
    }

    if (m < rest) {
        return;
    }

    usage_row(u, scope, rest, m - rest, metric, w[1]);
}


static int
usage_metric_rank(const char *metric)
{
    return strcmp(metric, "rq") == 0 ? 0
           : strcmp(metric, "tk") == 0 ? 1
           : strcmp(metric, "cost") == 0 ? 2 : 3;
}


static int
usage_cmp(const void *a, const void *b)
{
    int            c;
    const urow_t  *x = a, *y = b;

    static const char  scopes[] = "tkm";

    if (x->scope != y->scope) {
        return (int) (strchr(scopes, x->scope) - strchr(scopes, y->scope));
    }

    c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }

    c = usage_metric_rank(x->metric) - usage_metric_rank(y->metric);
    if (c != 0) {
        return c;
    }

    return usage_window_index(x->window) - usage_window_index(y->window);
}


static void
fmt_amount(const char *metric, int64_t v, char *out, size_t size)
{
    if (v == AI_LIMIT_NONE) {
        snprintf(out, size, "-");

    } else if (strcmp(metric, "cost") == 0) {
        snprintf(out, size, "$%lld.%06lld", (long long) (v / 1000000),
                 (long long) (v % 1000000 < 0 ? -(v % 1000000)
                                              : v % 1000000));

    } else {
        snprintf(out, size, "%lld", (long long) v);
    }
}


static int
cmd_usage(opts_t *o)
{
    int                 i;
    char                err[1024], key[512], scope_name[160];
    char                used[32], limit[32], left[32], reset[32];
    size_t              j, plen;
    time_t              now, next;
    struct tm           tm;
    usage_t             u;
    urow_t             *row;
    redisReply         *r;
    redisContext       *c;
    ai_tenants_t       *ts;
    const ai_key_t     *k;
    const ai_tenant_t  *tn;
    const ai_limits_t  *ml;
    const char         *model, *s;
    char                cursor[32], *cur;

    static const char  scopes[] = "tkm";

    memset(&u, 0, sizeof(usage_t));

    now = time(NULL);
    gmtime_r(&now, &tm);
    snprintf(u.win[0], sizeof(u.win[0]), "m%lld", (long long) (now / 60));
    snprintf(u.win[1], sizeof(u.win[1]), "d%lld", (long long) (now / 86400));
    snprintf(u.win[2], sizeof(u.win[2]), "M%04d%02d", tm.tm_year + 1900,
             tm.tm_mon + 1);

    ts = NULL;

    if (o->file != NULL) {
        ts = ai_tenants_load(o->file, err, sizeof(err));

        if (ts == NULL) {
            fail("%s", err);
            return KEYS_FAILED;
        }

        tn = ai_tenants_find(ts, o->tenant, strlen(o->tenant));

        if (tn == NULL) {
            fail("%s: no tenant \"%s\"", o->file, o->tenant);
            ai_tenants_free(ts);
            return KEYS_FAILED;
        }

        usage_limits(&u, 't', "", ai_tenant_limits(tn));

        for (j = 0; j < ai_tenant_keys_count(tn); j++) {
            k = ai_tenant_key_at(tn, j);
            usage_limits(&u, 'k', ai_key_id(k), ai_key_limits(k));
        }

        for (j = 0; j < ai_tenant_model_limits_count(tn); j++) {
            model = ai_tenant_model_limits_at(tn, j, &ml);
            usage_limits(&u, 'm', model, ml);
        }
    }

    c = redis_open(o);
    if (c == NULL) {
        ai_tenants_free(ts);
        free(u.rows);
        return KEYS_FAILED;
    }

    /* the counters that exist now: SCAN each scope of the tenant */
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "%s:u:%c:%s:", o->prefix, scopes[i],
                 o->tenant);
        plen = strlen(key);
        strcpy(cursor, "0");

        do {
            r = redis_check(c, redisCommand(c, "SCAN %s MATCH %s* COUNT 1000",
                                            cursor, key), "SCAN");

            if (r == NULL || r->type != REDIS_REPLY_ARRAY
                || r->elements != 2)
            {
                freeReplyObject(r);
                goto failed;
            }

            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);

            for (j = 0; j < r->element[1]->elements; j++) {
                cur = r->element[1]->element[j]->str;

                if (strncmp(cur, key, plen) == 0) {
                    usage_add_key(&u, scopes[i], cur + plen);
                }
            }

            freeReplyObject(r);

        } while (strcmp(cursor, "0") != 0);
    }

    /* their values, pipelined */
    for (j = 0; j < u.n; j++) {
        row = &u.rows[j];

        if (row->scope == 't') {
            snprintf(key, sizeof(key), "%s:u:t:%s:%s:%s", o->prefix,
                     o->tenant, row->metric,
                     u.win[usage_window_index(row->window)]);

        } else {
            snprintf(key, sizeof(key), "%s:u:%c:%s:%s:%s:%s", o->prefix,
                     row->scope, o->tenant, row->name, row->metric,
                     u.win[usage_window_index(row->window)]);
        }

        redisAppendCommand(c, "GET %s", key);
    }

    for (j = 0; j < u.n; j++) {
        r = NULL;

        if (redisGetReply(c, (void **) &r) != REDIS_OK
            || redis_check(c, r, "GET") == NULL)
        {
            goto failed;
        }

        if (r->type == REDIS_REPLY_STRING) {
            u.rows[j].used = strtoll(r->str, NULL, 10);

        } else if (r->type == REDIS_REPLY_INTEGER) {
            u.rows[j].used = r->integer;
        }

        freeReplyObject(r);
    }

    redisFree(c);
    c = NULL;

    qsort(u.rows, u.n, sizeof(urow_t), usage_cmp);

    printf("tenant %s at %s (windows %s, %s, %s)\n", o->tenant,
           (ai_time_format(now, err), err), u.win[0], u.win[1], u.win[2]);

    if (u.n == 0) {
        printf("no usage counters in the current windows%s\n",
               o->file ? " and no limits" : "");
    } else {
        printf("%-28s %-9s %-7s %16s %16s %16s %10s\n", "SCOPE", "METRIC",
               "WINDOW", "USED", "LIMIT", "REMAINING", "RESETS IN");
    }

    for (j = 0; j < u.n; j++) {
        row = &u.rows[j];

        if (row->scope == 't') {
            snprintf(scope_name, sizeof(scope_name), "tenant");

        } else {
            snprintf(scope_name, sizeof(scope_name), "%s %s",
                     row->scope == 'k' ? "key" : "model", row->name);
        }

        fmt_amount(row->metric, row->used, used, sizeof(used));
        fmt_amount(row->metric, row->limit, limit, sizeof(limit));
        fmt_amount(row->metric, row->limit == AI_LIMIT_NONE ? AI_LIMIT_NONE
                   : (row->limit > row->used ? row->limit - row->used : 0),
                   left, sizeof(left));

        if (row->window == 'm') {
            next = (now / 60 + 1) * 60;
            s = "minute";

        } else if (row->window == 'd') {
            next = (now / 86400 + 1) * 86400;
            s = "day";

        } else {
            char  first[48];

            snprintf(first, sizeof(first), "%04d-%02d-01T00:00:00Z",
                     tm.tm_mon == 11 ? tm.tm_year + 1901 : tm.tm_year + 1900,
                     tm.tm_mon == 11 ? 1 : tm.tm_mon + 2);
            next = now;
            (void) ai_time_parse(first, &next);
            s = "month";
        }

        if (next - now >= 86400) {
            snprintf(reset, sizeof(reset), "%lldd%lldh",
                     (long long) ((next - now) / 86400),
                     (long long) ((next - now) % 86400 / 3600));

        } else if (next - now >= 3600) {
            snprintf(reset, sizeof(reset), "%lldh%lldm",
                     (long long) ((next - now) / 3600),
                     (long long) ((next - now) % 3600 / 60));

        } else {
            snprintf(reset, sizeof(reset), "%llds", (long long) (next - now));
        }

        printf("%-28.28s %-9s %-7s %16s %16s %16s %10s\n", scope_name,
               strcmp(row->metric, "rq") == 0 ? "requests"
               : strcmp(row->metric, "tk") == 0 ? "tokens"
               : strcmp(row->metric, "cost") == 0 ? "cost" : row->metric,
               s, used, limit, left, reset);
    }

    ai_tenants_free(ts);
    free(u.rows);

    return KEYS_OK;

failed:

    if (c != NULL) {
        redisFree(c);
    }

    ai_tenants_free(ts);
    free(u.rows);

    return KEYS_FAILED;
}


static int
cmd_check(opts_t *o)
{
    char            err[1024];
    size_t          i, revoked, expired;
    time_t          now;
    ai_tenants_t   *ts;
    const ai_key_t *k;

    ts = ai_tenants_load(o->file, err, sizeof(err));

    if (ts == NULL) {
        fail("%s", err);
        return KEYS_FAILED;
    }

    now = time(NULL);
    revoked = 0;
    expired = 0;

    for (i = 0; i < ai_tenants_keys_count(ts); i++) {
        k = ai_tenants_key_at(ts, i);

        if (ai_key_revoked(k)) {
            revoked++;

        } else if (ai_key_expires(k) != 0 && now >= ai_key_expires(k)) {
            expired++;
        }
    }

    printf("%s: ok: %zu tenants, %zu keys (%zu active, %zu revoked, "
           "%zu expired)\n", o->file, ai_tenants_count(ts),
           ai_tenants_keys_count(ts),
           ai_tenants_keys_count(ts) - revoked - expired, revoked, expired);

    ai_tenants_free(ts);

    return KEYS_OK;
}


/* the command line */


static int
parse_expires(const char *s, time_t *out)
{
    char       *end;
    long long   n;

    if (strcmp(s, "never") == 0) {
        *out = 0;
        return 0;
    }

    if (ai_time_parse(s, out) == 0) {
        return 0;
    }

    errno = 0;
    n = strtoll(s, &end, 10);

    if (errno == 0 && end != s && n > 0 && n < 100000
        && (strcmp(end, "d") == 0 || strcmp(end, "h") == 0))
    {
        *out = time(NULL) + (time_t) n * (*end == 'd' ? 86400 : 3600);
        return 0;
    }

    return -1;
}


static int
parse_limit(opts_t *o, const limit_opt_t *l, const char *arg)
{
    char       *end;
    double      d;
    long long   n;

    errno = 0;

    if (l->money) {
        d = strtod(arg, &end);

        if (errno != 0 || end == arg || *end != '\0' || !(d >= 0.0)) {
            fail("--%s: expected an amount of US dollars, got \"%s\"",
                 l->opt, arg);
            return -1;
        }

        json_object_set_new(o->limits, l->name, json_real(d));
        return 0;
    }

    n = strtoll(arg, &end, 10);

    if (errno != 0 || end == arg || *end != '\0' || n < 0) {
        fail("--%s: expected a whole number >= 0, got \"%s\"", l->opt, arg);
        return -1;
    }

    json_object_set_new(o->limits, l->name, json_integer(n));
    return 0;
}


static const char *
opt_name(const struct option *opts, int val)
{
    for (; opts->name != NULL; opts++) {
        if (opts->val == val) {
            return opts->name;
        }
    }

    return "?";
}


static int
prefix_valid(const char *s)
{
    if (*s == '\0' || strlen(s) > 64) {
        return 0;
    }

    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr("._:-", *s) != NULL))
        {
            return 0;
        }
    }

    return 1;
}


int
main(int argc, char **argv)
{
    int               c, rc, i, nlong;
    char              err[512], *end;
    opts_t            o;
    struct option     longopts[32];
    const command_t  *cmd;

    static const struct option  base[] = {
        { "file", required_argument, NULL, OPT_FILE },
        { "redis", required_argument, NULL, OPT_REDIS },
        { "prefix", required_argument, NULL, OPT_PREFIX },
        { "tenant", required_argument, NULL, OPT_TENANT },
        { "id", required_argument, NULL, OPT_ID },
        { "expires", required_argument, NULL, OPT_EXPIRES },
        { "description", required_argument, NULL, OPT_DESCRIPTION },
        { "create-tenant", no_argument, NULL, OPT_CREATE_TENANT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "help", no_argument, NULL, OPT_HELP },
    };

    if (argc < 2) {
        fputs(usage_text, stderr);
        return KEYS_USAGE;
    }

    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0)
    {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            for (cmd = commands; cmd->name; cmd++) {
                if (strcmp(cmd->name, argv[2]) == 0) {
                    fputs(cmd->usage, stdout);
                    return KEYS_OK;
                }
            }
        }

        fputs(usage_text, stdout);
        return KEYS_OK;
    }

    for (cmd = commands; cmd->name; cmd++) {
        if (strcmp(cmd->name, argv[1]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        fail("unknown command \"%s\"", argv[1]);
        fputs(usage_text, stderr);
        return KEYS_USAGE;
    }

    nlong = 0;

    for (i = 0; i < (int) (sizeof(base) / sizeof(base[0])); i++) {
        longopts[nlong++] = base[i];
    }

    for (i = 0; limit_opts[i].name; i++) {
        longopts[nlong].name = limit_opts[i].opt;
        longopts[nlong].has_arg = required_argument;
        longopts[nlong].flag = NULL;
        longopts[nlong++].val = OPT_LIMIT + i;

        if (limit_opts[i].alias) {
            longopts[nlong] = longopts[nlong - 1];
            longopts[nlong++].name = limit_opts[i].alias;
        }
    }

    memset(&longopts[nlong], 0, sizeof(struct option));

    memset(&o, 0, sizeof(opts_t));
    o.prefix = "aigw";
    o.timeout = 5.0;
    o.limits = json_object();

    if (o.limits == NULL) {
        fail("out of memory");
        return KEYS_FAILED;
    }

    optind = 2;
    opterr = 0;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            fputs(cmd->usage, stdout);
            json_decref(o.limits);
            return KEYS_OK;
        }

        if (c == '?' || c == ':') {
            fail("%s: bad option \"%s\" (see aigw-keys %s --help)",
                 cmd->name, argv[optind - 1], cmd->name);
            json_decref(o.limits);
            return KEYS_USAGE;
        }

        if (!(cmd->allowed & BIT(c >= OPT_LIMIT ? OPT_LIMIT : c))) {
            fail("%s: --%s does not apply here (see aigw-keys %s --help)",
                 cmd->name, opt_name(longopts, c), cmd->name);
            json_decref(o.limits);
            return KEYS_USAGE;
        }

        o.seen |= BIT(c >= OPT_LIMIT ? OPT_LIMIT : c);
        rc = 0;

        switch (c) {
        case OPT_FILE:
            o.file = optarg;
            break;
        case OPT_REDIS:
            o.redis = optarg;
            break;
        case OPT_PREFIX:
            o.prefix = optarg;
            if (!prefix_valid(optarg)) {
                fail("--prefix: use 1-64 of A-Z a-z 0-9 . _ : -");
                rc = -1;
            }
            break;
        case OPT_TENANT:
            o.tenant = optarg;
            if (!ai_name_valid(optarg, strlen(optarg))) {
                fail("--tenant: \"%s\": use 1-%d of A-Z a-z 0-9 . _ -",
                     optarg, AI_NAME_MAX);
                rc = -1;
            }
            break;
        case OPT_ID:
            o.id = optarg;
            if (!ai_name_valid(optarg, strlen(optarg))) {
                fail("--id: \"%s\": use 1-%d of A-Z a-z 0-9 . _ -", optarg,
                     AI_NAME_MAX);
                rc = -1;
            }
            break;
        case OPT_EXPIRES:
            if (parse_expires(optarg, &o.expires) != 0) {
                fail("--expires: \"%s\": use an RFC 3339 time such as "
                     "2027-01-01T00:00:00Z, <N>d, <N>h or never", optarg);
                rc = -1;
            }
            break;
        case OPT_DESCRIPTION:
            o.description = optarg;
            break;
        case OPT_CREATE_TENANT:
            o.create_tenant = 1;
            break;
        case OPT_TIMEOUT:
            o.timeout = strtod(optarg, &end);
            if (*end != '\0' || !(o.timeout > 0.0 && o.timeout <= 3600.0)) {
                fail("--timeout: expected seconds, got \"%s\"", optarg);
                rc = -1;
            }
            break;
        default:
            rc = parse_limit(&o, &limit_opts[c - OPT_LIMIT], optarg);
            break;
        }

        if (rc != 0) {
            json_decref(o.limits);
            return KEYS_USAGE;
        }
    }

    rc = KEYS_USAGE;

    if (optind < argc) {
        fail("%s: unexpected argument \"%s\"", cmd->name, argv[optind]);

    } else if (cmd->run == cmd_usage && o.redis == NULL) {
        fail("usage: --redis URL is required");

    } else if (cmd->run != cmd_usage && o.file != NULL && o.redis != NULL) {
        fail("%s: give --file or --redis, not both", cmd->name);

    } else if (cmd->run != cmd_usage && cmd->run != cmd_check
               && o.file == NULL && o.redis == NULL)
    {
        fail("%s: --file or --redis is required", cmd->name);

    } else if (cmd->run == cmd_check && o.file == NULL) {
        fail("check: --file is required");

    } else if ((cmd->run == cmd_create || cmd->run == cmd_revoke
                || cmd->run == cmd_usage) && o.tenant == NULL)
    {
        fail("%s: --tenant is required", cmd->name);

    } else if (cmd->run == cmd_revoke && o.id == NULL) {
        fail("revoke: --id is required");

    } else if (o.create_tenant && o.redis != NULL) {
        fail("create: --create-tenant is for the file store (a Redis key "
             "names its tenant; limits come from the tenants file)");

    } else if (json_object_size(o.limits) > 0) {
        char  *text = json_dumps(o.limits, JSON_COMPACT);

        /* the same validation as the gateway's */
        ai_limits_t  l;

        if (text != NULL
            && ai_limits_parse(text, strlen(text), &l, err, sizeof(err)) != 0)
        {
            fail("%s", err);

        } else {
            rc = KEYS_OK;
        }

        free(text);

    } else {
        rc = KEYS_OK;
    }

    if (rc == KEYS_OK) {
        rc = cmd->run(&o);
    }

    json_decref(o.limits);

    return rc;
}
