/*
 * aigw plugin ABI.
 *
 * A plugin is a shared object that exports one function,
 *
 *     const aigw_plugin_t *aigw_plugin_entry(void);
 *
 * (use AIGW_PLUGIN_EXPORT below) returning a static descriptor: the plugin's
 * name, the ABI version it was built for, and its hooks.  The gateway loads
 * it with dlopen(RTLD_NOW | RTLD_LOCAL) at configuration time (so `nginx -t`
 * reports a missing file, a missing symbol, an ABI mismatch or a bad option),
 * and calls the hooks from the request path.
 *
 * Versioning.  The first two members of aigw_plugin_t (abi_version, name)
 * and the symbol name never change.  Any other change to this header that is
 * not binary-compatible bumps AIGW_PLUGIN_ABI_VERSION; the gateway refuses a
 * plugin whose abi_version differs from its own, naming both numbers, so an
 * old plugin is rebuilt rather than misread.
 *
 * No NGINX type appears here: a plugin builds against this header,
 * <jansson.h> and libc alone.  The request is handed over as the gateway's
 * parsed jansson document (json_t); plugin and gateway link the same
 * libjansson.so.4, so the plugin may read and modify it with the ordinary
 * jansson API.  Link the plugin with -ljansson.  A plugin that only reads
 * (or rewrites) the prompt text says so with AIGW_PLUGIN_TEXT_ONLY and uses
 * req->texts and req->set_text() instead: when every plugin of a chain does,
 * the gateway never builds the tree and splices the changed strings into
 * the client's bytes.
 *
 * Threading.  Hooks run in an NGINX worker's event loop: they must never
 * block (no disk, socket, sleep, lock wait or long CPU loop; budget
 * microseconds).  configure() and conf_free() run at configuration time in
 * the master process; workers are forked afterwards and share the
 * configuration copy-on-write.  After configure() returns, the configuration
 * is read-only: the same conf is used by many requests, in several worker
 * processes, and possibly from several threads in a later gateway, so keep
 * every mutable thing (buffers, PCRE2 match data) in the per-request state.
 * The hooks of one request are never called concurrently.
 *
 * Memory.  Strings the gateway passes in (aigw_kv_t, aigw_request_t fields,
 * delta text) are owned by the gateway and valid only for the duration of
 * the call unless stated otherwise.  Text a plugin returns (aigw_delta_t.out)
 * is owned by the plugin and must stay valid until the next hook call on the
 * same request state, or request_end().  Plugins allocate with malloc/free;
 * the gateway never frees plugin memory except through conf_free and
 * request_end.  Verdict strings are copied into the verdict's own arrays.
 *
 * Every hook pointer may be NULL: a plugin implements only what it needs.
 */

#ifndef AIGW_PLUGIN_H
#define AIGW_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif


/* 2: aigw_request_t texts/ntexts/set_text, aigw_plugin_t flags */
#define AIGW_PLUGIN_ABI_VERSION  2

/* The one symbol a plugin exports (the gateway looks it up by this name). */
#define AIGW_PLUGIN_SYMBOL       "aigw_plugin_entry"

#if defined(__GNUC__)
#define AIGW_PLUGIN_VISIBLE  __attribute__((visibility("default")))
#else
#define AIGW_PLUGIN_VISIBLE
#endif

/* In the plugin's source: AIGW_PLUGIN_EXPORT(my_descriptor) */
#define AIGW_PLUGIN_EXPORT(desc)                                            \
    AIGW_PLUGIN_VISIBLE const aigw_plugin_t *aigw_plugin_entry(void);       \
    AIGW_PLUGIN_VISIBLE const aigw_plugin_t *aigw_plugin_entry(void)        \
    {                                                                       \
        return &(desc);                                                     \
    }


/* One `key=value` option from nginx.conf, in the order written; a key may
 * repeat (e.g. header=A:1 header=B:2). */
typedef struct {
    const char  *key;
    const char  *value;
} aigw_kv_t;


typedef enum {
    AIGW_PASS = 0,     /* nothing to do: the input goes on unchanged */
    AIGW_MODIFIED,     /* request: the json body was changed in place;
                          delta: emit d->out instead of d->text */
    AIGW_REJECT        /* request: answer with the verdict's error;
                          delta: stop the stream with an error event */
} aigw_action_t;


#define AIGW_ERR_TYPE_LEN     64
#define AIGW_ERR_CODE_LEN     64
#define AIGW_ERR_PARAM_LEN    64
#define AIGW_ERR_MESSAGE_LEN  512

/*
 * The outcome of a hook.  The gateway resets it before every call (action
 * AIGW_PASS, status 0, empty strings).  For AIGW_REJECT fill it with aigw_verdict_reject(); the
 * gateway turns it into an OpenAI-style error body
 *     {"error":{"message":..,"type":..,"param":..,"code":..}}
 * with HTTP status `status` (or, mid-stream, into an SSE error event).
 * Messages must never quote secrets or the text that triggered a rule.
 */
typedef struct {
    aigw_action_t  action;
    int            status;                        /* 400..599 */
    char           type[AIGW_ERR_TYPE_LEN];       /* invalid_request_error */
    char           code[AIGW_ERR_CODE_LEN];       /* "" for null */
    char           param[AIGW_ERR_PARAM_LEN];     /* "" for null */
    char           message[AIGW_ERR_MESSAGE_LEN];
} aigw_verdict_t;


typedef struct aigw_request_s  aigw_request_t;


/*
 * One string of prompt text in the request, decoded (UTF-8, JSON escapes
 * resolved, not NUL-terminated): every messages[].content string, the text
 * of its parts (a string, or an object's "text", and its nested "content"),
 * and the same in prompt, input and instructions.
 */
typedef struct {
    const char  *text;
    size_t       len;
    const char  *param;      /* "messages", "prompt", "input", "instructions" */
} aigw_text_t;

/*
 * The request as the gateway parsed it (OpenAI chat-completions shape, also
 * for clients that spoke another format).  The struct and its strings are
 * valid from request_start() to request_end(); `body` only until
 * on_request() has returned for every plugin (after that the gateway may
 * free it and sets it to NULL).
 */
struct aigw_request_s {
    json_t      *body;       /* parsed request body; plugins may modify it
                                and then return AIGW_MODIFIED.  NULL for a
                                plugin flagged AIGW_PLUGIN_TEXT_ONLY when no
                                plugin of the chain needs the tree */
    const char  *tenant;     /* authenticated tenant name, "" if none */
    const char  *model;      /* model name the client asked for */
    const char  *endpoint;   /* "chat/completions", "completions", ... */
    int          stream;     /* the client asked for a streamed answer */

    /*
     * Adds a header to the upstream request (not to the client's
     * response).  Only valid during on_request().  Returns 0, or -1 if the
     * name or value is invalid (name: token characters; value: no CR, LF
     * or NUL) or memory ran out.  The gateway copies both strings.
     */
    int        (*add_header)(aigw_request_t *req, const char *name,
                             const char *value);

    /*
     * The prompt texts, in document order.  Valid during on_request() only
     * (the next plugin may see them changed).
     */
    const aigw_text_t  *texts;
    size_t              ntexts;

    /*
     * Replaces texts[i] with text (valid UTF-8; copied) and updates
     * texts[i].  Only valid during on_request(); return AIGW_MODIFIED after
     * a change.  Returns 0, or -1 (bad index, invalid UTF-8, out of
     * memory).
     */
    int        (*set_text)(aigw_request_t *req, size_t i, const char *text,
                           size_t len);

    void        *host;       /* the gateway's, never touch */
    void        *runner;     /* the plugin host's, never touch */
};


/*
 * One piece of response text for one choice.
 *
 * Streams: on_delta() is called for each content delta, in order, per choice
 * index; at the end of that choice (finish_reason or end of stream)
 * on_delta_flush() is called once, with the last piece of text (maybe
 * empty).  Non-streamed responses: on_delta_flush() alone is called once per
 * choice with the whole message content (streamed == 0), so a plugin written
 * for streams covers both.
 *
 * To emit something else, set out/out_len and return AIGW_MODIFIED.  Holding
 * back text (e.g. a possible match that may continue in the next delta) is
 * emitting less than was received and keeping the rest in the plugin's
 * state; on_delta_flush() must emit everything still held.  Emitted text
 * should never end in the middle of a UTF-8 sequence.
 */
typedef struct {
    const aigw_request_t  *req;
    unsigned               choice;     /* choices[].index */
    int                    streamed;
    const char            *text;       /* input, not NUL-terminated */
    size_t                 len;
    const char            *out;        /* plugin-owned, see above */
    size_t                 out_len;
} aigw_delta_t;


/* End of the response, after the last delta (also after a rejection). */
typedef struct {
    const aigw_request_t  *req;
    int                    status;             /* HTTP status to the client */
    int                    streamed;
    long long              prompt_tokens;      /* -1 if unknown */
    long long              completion_tokens;  /* -1 if unknown */
    const char            *provider;           /* upstream used, "" if none */
} aigw_response_info_t;


typedef struct {
    unsigned     abi_version;   /* AIGW_PLUGIN_ABI_VERSION */
    const char  *name;          /* short identifier, e.g. "pii_redact" */
    const char  *version;       /* the plugin's own version, free form */

    /*
     * Validates the options and builds one instance's configuration (the
     * same plugin may be configured several times with different options).
     * Returns 0 with *conf set, or -1 with a one-line reason in err (NUL-
     * terminated, at most errlen bytes), which `nginx -t` prints.
     */
    int   (*configure)(const aigw_kv_t *kv, size_t n, void **conf,
                       char *err, size_t errlen);
    void  (*conf_free)(void *conf);

    /* Per-request state; 0 or -1 (out of memory: the request fails 500). */
    int   (*request_start)(void *conf, aigw_request_t *req, void **state);
    void  (*request_end)(void *conf, void *state);

    void  (*on_request)(void *conf, void *state, aigw_request_t *req,
                        aigw_verdict_t *v);
    void  (*on_delta)(void *conf, void *state, aigw_delta_t *d,
                      aigw_verdict_t *v);
    void  (*on_delta_flush)(void *conf, void *state, aigw_delta_t *d,
                            aigw_verdict_t *v);
    void  (*on_response)(void *conf, void *state,
                         const aigw_response_info_t *info);

    unsigned  flags;            /* AIGW_PLUGIN_* below */
} aigw_plugin_t;


/*
 * on_request reads the request only through req->texts (and may change it
 * through req->set_text()); it never touches req->body, which may be NULL.
 */
#define AIGW_PLUGIN_TEXT_ONLY  0x0001


/* Fills a rejection; code and param may be NULL (JSON null). */
static inline void
aigw_verdict_reject(aigw_verdict_t *v, int status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static inline void
aigw_verdict_reject(aigw_verdict_t *v, int status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
{
    va_list  ap;

    v->action = AIGW_REJECT;
    v->status = status;
    snprintf(v->type, sizeof(v->type), "%s", type ? type : "");
    snprintf(v->code, sizeof(v->code), "%s", code ? code : "");
    snprintf(v->param, sizeof(v->param), "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
}


#ifdef __cplusplus
}
#endif

#endif /* AIGW_PLUGIN_H */
