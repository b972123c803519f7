/*
 * aigw plugin host: loads plugins and runs chains of plugin instances.
 *
 * No NGINX dependency (libc, libdl, jansson), so the module and the unit
 * tests drive the same code.  The module's use:
 *
 *   configuration time (ai_plugin NAME PATH key=value ...;):
 *       inst = aigw_instance_load(NAME, PATH, args, nargs, err, sizeof(err));
 *       NULL -> ngx_conf_log_error(NGX_LOG_EMERG, ..., "%s", err)
 *       freed with aigw_instance_free() from a cycle pool cleanup.
 *   a location / model lists instances (ai_plugins A B;) -> aigw_chain_t.
 *
 *   per request:
 *       run = aigw_run_start(&chain, &req, &v);   NULL -> error v (500)
 *       aigw_run_request(run, &v)                 REJECT -> error v
 *       per content delta:  aigw_run_delta(run, choice, text, len, ...)
 *       per choice at finish_reason / end of stream (and once with the whole
 *       content for non-streamed answers): aigw_run_delta_flush(...)
 *       aigw_run_response(run, &info); aigw_run_end(run)  (pool cleanup)
 *
 * All functions return quickly and never block, except aigw_instance_load()
 * (dlopen), which belongs to configuration time.
 */

#ifndef AIGW_PLUGIN_HOST_H
#define AIGW_PLUGIN_HOST_H

#include <stddef.h>

#include "aigw_plugin.h"


typedef struct aigw_instance_s  aigw_instance_t;

/*
 * Parses "key=value" strings into kv (kv[i] points into args[i]'s copy kept
 * in *store, to be freed with free()).  Keys are [A-Za-z0-9_-]+.  Returns 0,
 * or -1 with a message naming the bad argument.
 */
int aigw_kv_parse(const char *const *args, size_t nargs, aigw_kv_t **kv,
    char **store, char *err, size_t errlen);

/*
 * dlopen()s path, finds AIGW_PLUGIN_SYMBOL, checks the ABI version and calls
 * configure() with the parsed args.  Returns NULL with one line in err:
 *   plugin "pii": cannot load "/x.so": <dlerror>
 *   plugin "pii": "/x.so" does not export aigw_plugin_entry() (not an aigw
 *       plugin?)
 *   plugin "pii": "/x.so" was built for plugin ABI 2, this gateway speaks 1;
 *       rebuild it against this aigw_plugin.h
 *   plugin "pii" (pii_redact): bad argument "foo": expected key=value
 *   plugin "pii" (pii_redact): <configure()'s own message>
 */
aigw_instance_t *aigw_instance_load(const char *name, const char *path,
    const char *const *args, size_t nargs, char *err, size_t errlen);
void aigw_instance_free(aigw_instance_t *inst);

const char *aigw_instance_name(const aigw_instance_t *inst);
const aigw_plugin_t *aigw_instance_plugin(const aigw_instance_t *inst);


/* An ordered list of instances, applied first to last (the caller owns the
 * array, e.g. in an NGINX pool). */
typedef struct {
    aigw_instance_t *const  *inst;
    size_t                   n;
} aigw_chain_t;


typedef struct aigw_run_s  aigw_run_t;

/*
 * Per-request run of a chain: creates every instance's state.  req must stay
 * valid until aigw_run_end().  Returns NULL with v set (500) on failure.
 */
aigw_run_t *aigw_run_start(const aigw_chain_t *chain, aigw_request_t *req,
    aigw_verdict_t *v);

/*
 * Calls on_request in order.  Stops at the first AIGW_REJECT (v holds the
 * rejecting plugin's verdict, status defaulted to 400 if it left it 0).
 * Returns AIGW_REJECT, AIGW_MODIFIED if any plugin changed the body (the
 * gateway re-serialises it), or AIGW_PASS.
 */
aigw_action_t aigw_run_request(aigw_run_t *run, aigw_verdict_t *v);

/*
 * Like aigw_run_request(), from the client's JSON bytes (req->body NULL).
 * When every plugin of the chain with an on_request hook is flagged
 * AIGW_PLUGIN_TEXT_ONLY, the texts are found in the bytes and no tree is
 * built; otherwise the bytes are parsed (req->body is then the run's tree,
 * freed by aigw_run_end(): json_incref() it to keep it).  After
 * AIGW_MODIFIED with req->body NULL, aigw_run_request_output() gives the
 * new body.
 */
aigw_action_t aigw_run_request_bytes(aigw_run_t *run, const char *body,
    size_t len, aigw_verdict_t *v);

/* The client's bytes with the changed texts spliced in; valid until
 * aigw_run_end().  Returns 0, or -1 when nothing was spliced. */
int aigw_run_request_output(const aigw_run_t *run, const char **body,
    size_t *len);

/* Where byte off of the client's body (outside the changed texts) is in
 * that output. */
size_t aigw_run_request_offset(const aigw_run_t *run, size_t off);

/*
 * Passes one delta of choice `choice` through the chain: plugin 1's output
 * is plugin 2's input, and so on; a plugin that holds text back simply
 * passes less on.  *out, *out_len: the text to send to the client now (maybe
 * empty), valid until the next aigw_run_* call.  Returns AIGW_REJECT (stop
 * the stream with v's error, sending nothing of *out), else AIGW_PASS or
 * AIGW_MODIFIED.
 */
aigw_action_t aigw_run_delta(aigw_run_t *run, unsigned choice,
    const char *text, size_t len, const char **out, size_t *out_len,
    aigw_verdict_t *v);

/*
 * The end of choice `choice`: text is its last piece (maybe empty), or, for
 * a non-streamed answer, its whole content.  Every plugin emits what it
 * held; plugin i's flushed output is plugin i+1's final input.
 */
aigw_action_t aigw_run_delta_flush(aigw_run_t *run, unsigned choice,
    const char *text, size_t len, const char **out, size_t *out_len,
    aigw_verdict_t *v);

/* A choice that got deltas but no flush yet (for the end of the stream:
 * loop until -1), lowest index first. */
int aigw_run_unflushed_choice(const aigw_run_t *run);

void aigw_run_response(aigw_run_t *run, const aigw_response_info_t *info);
void aigw_run_end(aigw_run_t *run);

/*
 * Writes the OpenAI-style error body for a rejection verdict into buf
 * (NUL-terminated, truncated to buflen).  Returns the length it needed.
 */
size_t aigw_verdict_error_body(const aigw_verdict_t *v, char *buf,
    size_t buflen);


/*
 * JSON text without a tree (NGINX-free, for the gateway's answer path).
 *
 * aigw_json_choices() finds, in an OpenAI chat answer ("message") or chunk
 * ("delta"), each choice's index, the content of that member and whether
 * finish_reason is a string.  Offsets are into p.  Returns the number of
 * choices (at most max), or -1 when the document is not that simple (not an
 * object, no "choices" array, a duplicate key among those read, more than
 * max choices, bad JSON): the caller then parses it.
 */
typedef struct {
    unsigned long long  index;
    size_t              obj;           /* after the member's '{'; 0: none */
    int                 obj_empty;
    size_t              vstart;        /* content's value, quotes included; */
    size_t              vend;          /* vstart == vend: absent */
    int                 content_string;
    int                 content_escaped;
    int                 finish;
} aigw_choice_span_t;

int aigw_json_choices(const char *p, size_t len, const char *member,
    aigw_choice_span_t *c, size_t max);

/* Decodes a JSON string's contents (quotes excluded) into dst (len bytes
 * are enough); 0, or -1 on a bad escape, a lone surrogate or \u0000. */
int aigw_json_unescape(const char *s, size_t len, char *dst, size_t *dlen);

/* Writes s as JSON string contents (no quotes) into dst, or only counts
 * when dst is NULL; returns the length. */
size_t aigw_json_escape(char *dst, const char *s, size_t len);

#endif /* AIGW_PLUGIN_HOST_H */
