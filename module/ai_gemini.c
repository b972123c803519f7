
/*
 * Gemini (generateContent, streamGenerateContent with alt=sse,
 * batchEmbedContents): OpenAI requests to Gemini's bodies and Gemini's
 * answers back to OpenAI's shapes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_translate.h"


#define AI_GEM_SCHEMA_DEPTH  64


static int ai_gem_contents(json_t *body, json_t *messages,
    ai_json_error_t *err);
static json_t *ai_gem_parts(json_t *content, const char *where,
    ai_json_error_t *err);
static json_t *ai_gem_image(json_t *part, const char *where,
    ai_json_error_t *err);
static int ai_gem_calls(json_t *parts, json_t *calls, size_t i,
    ai_json_error_t *err);
static json_t *ai_gem_response_part(json_t *messages, size_t i, json_t *m,
    ai_json_error_t *err);
static int ai_gem_push(json_t *contents, const char *role, json_t *parts);
static int ai_gem_tools(json_t *body, json_t *req, ai_json_error_t *err);
static int ai_gem_config(json_t *body, json_t *req, ai_json_error_t *err);
static json_t *ai_gem_schema(json_t *schema, int depth);
static int ai_gem_embed_request(json_t *req, const char *model,
    size_t model_len, ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err);
static int ai_gem_embed_response(json_t *root, const ai_translate_opts_t *o,
    ai_buf_t *out);
static int ai_gem_error(json_t *root, int status, ai_buf_t *out);
static void ai_gem_error_type(const char *status, const char **type,
    const char **code);
static const char *ai_gem_finish(const char *reason, int tools);
static void ai_gem_usage(ai_usage_t *u, json_t *meta);
static int ai_gem_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_gem_stream_finish(ai_stream_t *s, int complete,
    ai_buf_t *out);


int
ai_gemini_request(json_t *req, const ai_translate_opts_t *o, ai_buf_t *out,
    ai_buf_t *path, ai_json_error_t *err)
{
    int          rc;
    json_t      *body;
    size_t       model_len;
    const char  *model;

    if (o->model && o->model_len) {
        model = o->model;
        model_len = o->model_len;

    } else {
        model = ai_json_str(req, "model");
        model_len = model ? strlen(model) : 0;
    }

    if (model_len > 7 && memcmp(model, "models/", 7) == 0) {
        model += 7;
        model_len -= 7;
    }

    if (model_len == 0) {
        ai_translate_err(err, "missing_required_parameter", "model",
                         "Missing required parameter: 'model'.");
        return -1;
    }

    if (o->endpoint == AI_EP_EMBEDDINGS) {
        return ai_gem_embed_request(req, model, model_len, out, path, err);
    }

    body = json_object();

    if (body == NULL) {
        goto nomem;
    }

    if (ai_gem_contents(body, json_object_get(req, "messages"), err) != 0
        || ai_gem_tools(body, req, err) != 0
        || ai_gem_config(body, req, err) != 0)
    {
        json_decref(body);
        return -1;
    }

    rc = ai_buf_append_json(out, body);
    json_decref(body);

    if (rc != 0
        || ai_buf_append_str(path, "/models/") != 0
        || ai_buf_append(path, model, model_len) != 0
        || ai_buf_append_str(path,
                             json_is_true(json_object_get(req, "stream"))
                             ? ":streamGenerateContent?alt=sse"
                             : ":generateContent") != 0)
    {
        goto nomem;
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");
    return -1;
}


static int
ai_gem_contents(json_t *body, json_t *messages, ai_json_error_t *err)
{
    size_t       i;
    json_t      *contents, *system, *m, *content, *parts, *text, *calls;
    const char  *role;
    char         where[64];

    if (!json_is_array(messages)) {
        ai_translate_err(err, "invalid_type", "messages",
                         "Invalid type for 'messages': expected an array.");
        return -1;
    }

    contents = json_array();
    system = json_array();

    if (contents == NULL || system == NULL
        || json_object_set_new(body, "contents", contents) != 0)
    {
        json_decref(system);
        goto nomem;
    }

    json_array_foreach(messages, i, m) {
        role = ai_json_str(m, "role");
        content = json_object_get(m, "content");
        snprintf(where, sizeof(where), "messages[%zu].content", i);

        if (role == NULL) {
            snprintf(where, sizeof(where), "messages[%zu].role", i);
            ai_translate_err(err, "missing_required_parameter", where,
                             "Missing required parameter: '%s'.", where);
            goto failed;
        }

        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            text = ai_text_of(content, "\n");

            if (text == NULL) {
                ai_translate_err(err, "invalid_value", where,
                                 "Invalid '%s': a system message may hold "
                                 "only text.", where);
                goto failed;
            }

            if (json_array_append_new(system,
                                      json_pack("{s:o}", "text", text)) != 0)
            {
                goto nomem;
            }

            continue;
        }

        if (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0) {
            parts = ai_gem_parts(content, where, err);

            if (parts == NULL) {
                goto failed;
            }

            calls = json_object_get(m, "tool_calls");

            if (role[0] == 'a' && calls && !json_is_null(calls)
                && ai_gem_calls(parts, calls, i, err) != 0)
            {
                json_decref(parts);
                goto failed;
            }

            if (ai_gem_push(contents, role[0] == 'a' ? "model" : "user",
                            parts) != 0)
            {
                goto nomem;
            }

            continue;
        }

        if (strcmp(role, "tool") == 0) {
            parts = ai_gem_response_part(messages, i, m, err);

            if (parts == NULL) {
                goto failed;
            }

            if (ai_gem_push(contents, "user", json_pack("[o]", parts)) != 0)
            {
                goto nomem;
            }

            continue;
        }

        snprintf(where, sizeof(where), "messages[%zu].role", i);
        ai_translate_err(err, "invalid_value", where,
                         "Invalid value for '%s': '%s' is not supported by "
                         "this provider.", where, role);
        goto failed;
    }

    if (json_array_size(contents) == 0) {
        ai_translate_err(err, "invalid_value", "messages",
                         "Invalid 'messages': this provider needs at least "
                         "one message that is not a system message.");
        goto failed;
    }

    if (json_array_size(system)
        && json_object_set_new(body, "systemInstruction",
                               json_pack("{s:O}", "parts", system)) != 0)
    {
        goto nomem;
    }

    json_decref(system);

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(system);

    return -1;
}


static json_t *
ai_gem_parts(json_t *content, const char *where, ai_json_error_t *err)
{
    size_t       i;
    json_t      *parts, *part, *p;
    const char  *type, *text;
    char         param[96];

    parts = json_array();

    if (parts == NULL) {
        goto nomem;
    }

    if (content == NULL || json_is_null(content)) {
        return parts;
    }

    if (json_is_string(content)) {
        if (json_string_length(content)
            && json_array_append_new(parts,
                                     json_pack("{s:O}", "text", content)) != 0)
        {
            goto nomem;
        }

        return parts;
    }

    if (!json_is_array(content)) {
        ai_translate_err(err, "invalid_type", where,
                         "Invalid type for '%s': expected a string or an "
                         "array of content parts.", where);
        json_decref(parts);
        return NULL;
    }

    json_array_foreach(content, i, part) {
        snprintf(param, sizeof(param), "%s[%zu]", where, i);
        type = ai_json_str(part, "type");

        if (type == NULL) {
            ai_translate_err(err, "missing_required_parameter", param,
                             "Missing required parameter: '%s.type'.",
                             param);
            goto failed;
        }

        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            text = ai_json_str(part, type[0] == 't' ? "text" : "refusal");

            if (text == NULL) {
                ai_translate_err(err, "invalid_value", param,
                                 "Invalid '%s': the part has no text.",
                                 param);
                goto failed;
            }

            if (*text == '\0') {
                continue;
            }

            p = json_pack("{s:s}", "text", text);

        } else if (strcmp(type, "image_url") == 0) {
            p = ai_gem_image(part, param, err);

            if (p == NULL) {
                goto failed;
            }

        } else {
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': content parts of type '%s' are "
                             "not supported by this provider.", param, type);
            goto failed;
        }

        if (json_array_append_new(parts, p) != 0) {
            goto nomem;
        }
    }

    return parts;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(parts);

    return NULL;
}


static json_t *
ai_gem_image(json_t *part, const char *where, ai_json_error_t *err)
{
    int          rc;
    json_t      *iu;
    size_t       mime_len, n;
    const char  *url, *mime, *data, *end;

    static const struct {
        const char  *ext;
        const char  *mime;
    } types[] = {
        { ".png", "image/png" },
        { ".gif", "image/gif" },
        { ".webp", "image/webp" },
        { ".heic", "image/heic" },
        { ".heif", "image/heif" },
        { ".pdf", "application/pdf" },
    };

    iu = json_object_get(part, "image_url");
    url = json_is_string(iu) ? json_string_value(iu) : ai_json_str(iu, "url");

    if (url == NULL) {
        ai_translate_err(err, "invalid_value", where,
                         "Invalid '%s': image_url.url is missing.", where);
        return NULL;
    }

    rc = ai_data_url(url, &mime, &mime_len, &data);

    if (rc == 1) {
        return json_pack("{s:{s:s%,s:s}}", "inlineData",
                         "mimeType", mime, mime_len, "data", data);
    }

    if (rc == 0 && (strncmp(url, "https://", 8) == 0
                    || strncmp(url, "http://", 7) == 0))
    {
        /* fileData needs a media type: guess it from the path */

        end = url + strcspn(url, "?#");
        mime = "image/jpeg";

        for (n = 0; n < sizeof(types) / sizeof(types[0]); n++) {
            mime_len = strlen(types[n].ext);

            if ((size_t) (end - url) > mime_len
                && strncmp(end - mime_len, types[n].ext, mime_len) == 0)
            {
                mime = types[n].mime;
                break;
            }
        }

        return json_pack("{s:{s:s,s:s}}", "fileData", "mimeType", mime,
                         "fileUri", url);
    }

    ai_translate_err(err, "invalid_value", where,
                     "Invalid '%s': an image must be an http(s) URL or a "
                     "base64 data URL.", where);

    return NULL;
}


static int
ai_gem_calls(json_t *parts, json_t *calls, size_t i, ai_json_error_t *err)
{
    size_t        j;
    json_t       *tc, *fn, *args;
    const char   *name, *s;
    char          param[96];
    json_error_t  jerr;

    if (!json_is_array(calls)) {
        snprintf(param, sizeof(param), "messages[%zu].tool_calls", i);
        ai_translate_err(err, "invalid_type", param,
                         "Invalid type for '%s': expected an array.", param);
        return -1;
    }

    json_array_foreach(calls, j, tc) {
        fn = json_object_get(tc, "function");
        name = ai_json_str(fn, "name");

        if (name == NULL) {
            snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]",
                     i, j);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': a tool call needs a function "
                             "name.", param);
            return -1;
        }

        s = ai_json_str(fn, "arguments");
        snprintf(param, sizeof(param),
                 "messages[%zu].tool_calls[%zu].function.arguments", i, j);

        if (s == NULL || s[strspn(s, " \t\r\n")] == '\0') {
            args = json_object();

        } else {
            args = json_loads(s, 0, &jerr);

            if (args == NULL) {
                ai_translate_err(err, "invalid_value", param,
                                 "Invalid '%s': not valid JSON (%s).", param,
                                 jerr.text);
                return -1;
            }
        }

        if (!json_is_object(args)) {
            json_decref(args);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': expected a JSON object.", param);
            return -1;
        }

        if (json_array_append_new(parts,
                                  json_pack("{s:{s:s,s:o}}", "functionCall",
                                            "name", name, "args", args))
            != 0)
        {
            ai_translate_err(err, "internal_error", NULL, "Out of memory.");
            return -1;
        }
    }

    return 0;
}


/*
 * Gemini names a function response by the function's name, OpenAI by the
 * call's id: the name is that of the nearest earlier call with the id.
 */

static json_t *
ai_gem_response_part(json_t *messages, size_t i, json_t *m,
    ai_json_error_t *err)
{
    size_t        j, k;
    json_t       *prev, *tc, *text, *resp;
    const char   *id, *name, *s;
    char          where[64];

    id = ai_json_str(m, "tool_call_id");
    name = NULL;

    for (j = i; id && name == NULL && j-- > 0; ) {
        prev = json_array_get(messages, j);

        json_array_foreach(json_object_get(prev, "tool_calls"), k, tc) {
            s = ai_json_str(tc, "id");

            if (s && strcmp(s, id) == 0) {
                name = ai_json_str(json_object_get(tc, "function"), "name");
                break;
            }
        }
    }

    if (name == NULL) {
        snprintf(where, sizeof(where), "messages[%zu].tool_call_id", i);
        ai_translate_err(err, "invalid_value", where,
                         "Invalid '%s': no earlier assistant tool call has "
                         "this id.", where);
        return NULL;
    }

    text = ai_text_of(json_object_get(m, "content"), "\n");

    if (text == NULL) {
        snprintf(where, sizeof(where), "messages[%zu].content", i);
        ai_translate_err(err, "invalid_value", where,
                         "Invalid '%s': a tool result may hold only text.",
                         where);
        return NULL;
    }

    /* a JSON object result goes as it is, anything else wrapped */

    resp = json_loads(json_string_value(text), 0, NULL);

    if (!json_is_object(resp)) {
        json_decref(resp);
        resp = json_pack("{s:O}", "content", text);
    }

    json_decref(text);

    return json_pack("{s:{s:s,s:o}}", "functionResponse", "name", name,
                     "response", resp);
}


/* consecutive turns of one role are one Gemini content; parts is stolen */

static int
ai_gem_push(json_t *contents, const char *role, json_t *parts)
{
    int          rc;
    size_t       n;
    json_t      *last;
    const char  *last_role;

    if (parts == NULL) {
        return -1;
    }

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return 0;
    }

    n = json_array_size(contents);

    if (n) {
        last = json_array_get(contents, n - 1);
        last_role = ai_json_str(last, "role");

        if (last_role && strcmp(last_role, role) == 0) {
            rc = json_array_extend(json_object_get(last, "parts"), parts);
            json_decref(parts);
            return rc;
        }
    }

    return json_array_append_new(contents, json_pack("{s:s,s:o}", "role",
                                                     role, "parts", parts));
}


static int
ai_gem_tools(json_t *body, json_t *req, ai_json_error_t *err)
{
    size_t       i;
    json_t      *tools, *t, *fn, *decls, *decl, *choice, *cfg, *params;
    const char  *name, *type, *mode;
    char         param[64];

    tools = json_object_get(req, "tools");

    if (tools == NULL || json_is_null(tools)
        || (json_is_array(tools) && json_array_size(tools) == 0))
    {
        return 0;
    }

    if (!json_is_array(tools)) {
        ai_translate_err(err, "invalid_type", "tools",
                         "Invalid type for 'tools': expected an array.");
        return -1;
    }

    decls = json_array();

    if (decls == NULL
        || json_object_set_new(body, "tools",
                               json_pack("[{s:o}]", "functionDeclarations",
                                         decls)) != 0)
    {
        goto nomem;
    }

    json_array_foreach(tools, i, t) {
        type = ai_json_str(t, "type");
        fn = json_object_get(t, "function");
        name = ai_json_str(fn, "name");

        if ((type && strcmp(type, "function") != 0) || name == NULL) {
            snprintf(param, sizeof(param), "tools[%zu]", i);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': only function tools with a name "
                             "are supported by this provider.", param);
            return -1;
        }

        decl = json_pack("{s:s}", "name", name);

        if (decl == NULL || json_array_append_new(decls, decl) != 0) {
            goto nomem;
        }

        if (json_is_string(json_object_get(fn, "description"))) {
            json_object_set(decl, "description",
                            json_object_get(fn, "description"));
        }

        params = json_object_get(fn, "parameters");

        if (json_is_object(params)) {
            params = ai_gem_schema(params, 0);

            if (params == NULL) {
                snprintf(param, sizeof(param), "tools[%zu].function", i);
                ai_translate_err(err, "invalid_value", param,
                                 "Invalid '%s.parameters': nested too "
                                 "deeply.", param);
                return -1;
            }

            json_object_set_new(decl, "parameters", params);
        }
    }

    choice = json_object_get(req, "tool_choice");

    if (choice == NULL || json_is_null(choice)) {
        return 0;
    }

    name = NULL;
    mode = json_string_value(choice);

    if (mode && strcmp(mode, "auto") == 0) {
        mode = "AUTO";

    } else if (mode && strcmp(mode, "none") == 0) {
        mode = "NONE";

    } else if (mode && strcmp(mode, "required") == 0) {
        mode = "ANY";

    } else if ((name = ai_json_str(json_object_get(choice, "function"),
                                   "name")) != NULL)
    {
        mode = "ANY";

    } else {
        ai_translate_err(err, "invalid_value", "tool_choice",
                         "Invalid 'tool_choice': expected 'auto', 'none', "
                         "'required' or a named function.");
        return -1;
    }

    cfg = json_pack("{s:s}", "mode", mode);

    if (cfg == NULL) {
        goto nomem;
    }

    if (name) {
        json_object_set_new(cfg, "allowedFunctionNames",
                            json_pack("[s]", name));
    }

    if (json_object_set_new(body, "toolConfig",
                            json_pack("{s:o}", "functionCallingConfig", cfg))
        != 0)
    {
        goto nomem;
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");
    return -1;
}


/*
 * Gemini's Schema is an OpenAPI subset that rejects JSON Schema keywords
 * it does not know; these are the ones OpenAI clients commonly send.
 */

static json_t *
ai_gem_schema(json_t *schema, int depth)
{
    size_t       i;
    json_t      *out, *v, *c, *props, *p;
    const char  *key, *pkey;

    if (depth > AI_GEM_SCHEMA_DEPTH) {
        return NULL;
    }

    if (json_is_array(schema)) {
        out = json_array();

        json_array_foreach(schema, i, v) {
            c = ai_gem_schema(v, depth + 1);

            if (c == NULL || json_array_append_new(out, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }

        return out;
    }

    if (!json_is_object(schema)) {
        return json_incref(schema);
    }

    out = json_object();

    json_object_foreach(schema, key, v) {
        if (strcmp(key, "additionalProperties") == 0
            || strcmp(key, "$schema") == 0 || strcmp(key, "$id") == 0
            || strcmp(key, "$comment") == 0 || strcmp(key, "strict") == 0)
        {
            continue;
        }

        if (strcmp(key, "properties") == 0 && json_is_object(v)) {
            props = json_object();

            json_object_foreach(v, pkey, p) {
                c = ai_gem_schema(p, depth + 1);

                if (c == NULL || json_object_set_new(props, pkey, c) != 0) {
                    json_decref(props);
                    json_decref(out);
                    return NULL;
                }
            }

            c = props;

        } else {
            c = ai_gem_schema(v, depth + 1);
        }

        if (c == NULL || json_object_set_new(out, key, c) != 0) {
            json_decref(out);
            return NULL;
        }
    }

    return out;
}


static int
ai_gem_config(json_t *body, json_t *req, ai_json_error_t *err)
{
    size_t       i;
    json_t      *cfg, *v, *stops, *s, *rf, *js, *schema;
    const char  *type, *name;

    static const struct {
        const char  *openai;
        const char  *gemini;
    } numbers[] = {
        { "temperature", "temperature" },
        { "top_p", "topP" },
        { "presence_penalty", "presencePenalty" },
        { "frequency_penalty", "frequencyPenalty" },
        { "seed", "seed" },
    };

    cfg = json_object();

    if (cfg == NULL) {
        goto nomem;
    }

    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        v = json_object_get(req, numbers[i].openai);

        if (json_is_number(v)) {
            json_object_set(cfg, numbers[i].gemini, v);
        }
    }

    name = "max_completion_tokens";
    v = json_object_get(req, name);

    if (v == NULL || json_is_null(v)) {
        name = "max_tokens";
        v = json_object_get(req, name);
    }

    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            ai_translate_err(err, "invalid_value", name,
                             "Invalid '%s': expected a positive integer.",
                             name);
            goto failed;
        }

        json_object_set(cfg, "maxOutputTokens", v);
    }

    v = json_object_get(req, "n");

    if (json_is_integer(v) && json_integer_value(v) != 1) {
        if (json_integer_value(v) < 1
            || json_integer_value(v) > AI_MAX_CHOICES)
        {
            ai_translate_err(err, "invalid_value", "n",
                             "Invalid 'n': expected 1 to %d.",
                             AI_MAX_CHOICES);
            goto failed;
        }

        json_object_set(cfg, "candidateCount", v);
    }

    v = json_object_get(req, "stop");

    if (json_is_string(v) || json_is_array(v)) {
        stops = json_is_string(v) ? json_pack("[O]", v) : json_copy(v);

        json_array_foreach(stops, i, s) {
            if (!json_is_string(s)) {
                json_decref(stops);
                ai_translate_err(err, "invalid_type", "stop",
                                 "Invalid type for 'stop': expected a string "
                                 "or an array of strings.");
                goto failed;
            }
        }

        if (json_array_size(stops)) {
            json_object_set(cfg, "stopSequences", stops);
        }

        json_decref(stops);

    } else if (v && !json_is_null(v)) {
        ai_translate_err(err, "invalid_type", "stop",
                         "Invalid type for 'stop': expected a string or an "
                         "array of strings.");
        goto failed;
    }

    rf = json_object_get(req, "response_format");
    type = ai_json_str(rf, "type");

    if (type && strcmp(type, "json_object") == 0) {
        json_object_set_new(cfg, "responseMimeType",
                            json_string("application/json"));

    } else if (type && strcmp(type, "json_schema") == 0) {
        js = json_object_get(rf, "json_schema");
        schema = json_object_get(js, "schema");
        json_object_set_new(cfg, "responseMimeType",
                            json_string("application/json"));

        if (json_is_object(schema)) {
            schema = ai_gem_schema(schema, 0);

            if (schema == NULL) {
                ai_translate_err(err, "invalid_value", "response_format",
                                 "Invalid 'response_format': the schema is "
                                 "nested too deeply.");
                goto failed;
            }

            json_object_set_new(cfg, "responseSchema", schema);
        }

    } else if (type && strcmp(type, "text") != 0) {
        ai_translate_err(err, "invalid_value", "response_format",
                         "Invalid 'response_format': '%s' is not supported "
                         "by this provider.", type);
        goto failed;
    }

    if (json_object_size(cfg) == 0) {
        json_decref(cfg);
        return 0;
    }

    if (json_object_set_new(body, "generationConfig", cfg) != 0) {
        goto nomem;
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(cfg);
    return -1;
}


static int
ai_gem_embed_request(json_t *req, const char *model, size_t model_len,
    ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err)
{
    int          rc;
    size_t       i;
    json_t      *input, *items, *v, *reqs, *r, *dims;
    ai_buf_t     name;

    input = json_object_get(req, "input");
    dims = json_object_get(req, "dimensions");

    if (json_is_string(input)) {
        items = json_pack("[O]", input);

    } else if (json_is_array(input) && json_array_size(input)) {
        items = json_incref(input);

    } else {
        ai_translate_err(err, "invalid_type", "input",
                         "Invalid type for 'input': expected a string or an "
                         "array of strings.");
        return -1;
    }

    memset(&name, 0, sizeof(ai_buf_t));
    reqs = json_array();
    rc = -1;

    if (items == NULL || reqs == NULL
        || ai_buf_append_str(&name, "models/") != 0
        || ai_buf_append(&name, model, model_len) != 0)
    {
        ai_translate_err(err, "internal_error", NULL, "Out of memory.");
        goto done;
    }

    json_array_foreach(items, i, v) {
        if (!json_is_string(v)) {
            ai_translate_err(err, "invalid_value", "input",
                             "Invalid 'input': this provider takes text "
                             "only, not token arrays.");
            goto done;
        }

        r = json_pack("{s:s,s:{s:[{s:O}]}}", "model", name.data,
                      "content", "parts", "text", v);

        if (json_is_integer(dims)) {
            json_object_set(r, "outputDimensionality", dims);
        }

        if (r == NULL || json_array_append_new(reqs, r) != 0) {
            ai_translate_err(err, "internal_error", NULL, "Out of memory.");
            goto done;
        }
    }

    r = json_pack("{s:O}", "requests", reqs);

    if (ai_buf_append_json(out, r) != 0
        || ai_buf_append_str(path, "/") != 0
        || ai_buf_append(path, name.data, name.len) != 0
        || ai_buf_append_str(path, ":batchEmbedContents") != 0)
    {
        json_decref(r);
        ai_translate_err(err, "internal_error", NULL, "Out of memory.");
        goto done;
    }

    json_decref(r);
    rc = 0;

done:

    json_decref(items);
    json_decref(reqs);
    ai_buf_free(&name);

    return rc;
}


int
ai_gemini_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out)
{
    int          rc, ncalls, k;
    size_t       i, j;
    json_t      *root, *cands, *cand, *parts, *p, *fc, *calls, *choices;
    json_t      *msg, *resp, *choice;
    char         callid[32], *args;
    ai_buf_t     text, id;
    ai_usage_t   usage;
    const char  *s, *finish;

    root = json_loadb(body, len, 0, NULL);

    /* a streamed answer without alt=sse is an array of responses */

    if (json_is_array(root) && json_array_size(root) == 1) {
        p = json_incref(json_array_get(root, 0));
        json_decref(root);
        root = p;
    }

    if (status >= 400 || json_is_object(json_object_get(root, "error"))) {
        rc = ai_gem_error(root, status, out);
        json_decref(root);
        return rc;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }

    if (o->endpoint == AI_EP_EMBEDDINGS) {
        rc = ai_gem_embed_response(root, o, out);
        json_decref(root);
        return rc;
    }

    memset(&text, 0, sizeof(ai_buf_t));
    memset(&id, 0, sizeof(ai_buf_t));
    choices = json_array();
    resp = NULL;
    rc = -1;
    ncalls = 0;

    if (choices == NULL) {
        goto done;
    }

    cands = json_object_get(root, "candidates");

    json_array_foreach(cands, i, cand) {
        parts = json_object_get(json_object_get(cand, "content"), "parts");
        calls = json_array();
        text.len = 0;

        if (calls == NULL || ai_buf_append(&text, "", 0) != 0) {
            json_decref(calls);
            goto done;
        }

        json_array_foreach(parts, j, p) {
            if (json_is_true(json_object_get(p, "thought"))) {
                continue;
            }

            s = ai_json_str(p, "text");

            if (s && ai_buf_append_str(&text, s) != 0) {
                json_decref(calls);
                goto done;
            }

            fc = json_object_get(p, "functionCall");

            if (!json_is_object(fc)) {
                continue;
            }

            args = json_dumps(json_object_get(fc, "args"),
                              JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(callid, sizeof(callid), "call_%d", ncalls++);
            s = ai_json_str(fc, "name");

            k = json_array_append_new(calls,
                    json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", callid,
                              "type", "function", "function",
                              "name", s ? s : "",
                              "arguments", args ? args : "{}"));
            free(args);

            if (k != 0) {
                json_decref(calls);
                goto done;
            }
        }

        finish = ai_gem_finish(ai_json_str(cand, "finishReason"),
                               json_array_size(calls) != 0);

        if (json_array_size(calls) && text.len == 0) {
            msg = json_pack("{s:s,s:n,s:n,s:o}", "role", "assistant",
                            "content", "refusal", "tool_calls", calls);

        } else if (json_array_size(calls)) {
            msg = json_pack("{s:s,s:s%,s:n,s:o}", "role", "assistant",
                            "content", text.data, text.len, "refusal",
                            "tool_calls", calls);

        } else {
            json_decref(calls);
            msg = json_pack("{s:s,s:s%,s:n}", "role", "assistant",
                            "content", text.data, text.len, "refusal");
        }

        choice = json_pack("{s:I,s:o,s:n,s:s}", "index",
                           (json_int_t) ai_json_long(cand, "index",
                                                     (long) i),
                           "message", msg, "logprobs",
                           "finish_reason", finish);

        if (choice == NULL || json_array_append_new(choices, choice) != 0) {
            goto done;
        }
    }

    if (json_array_size(choices) == 0) {
        /* the prompt itself was blocked */

        choice = json_pack("{s:i,s:{s:s,s:n,s:n},s:n,s:s}", "index", 0,
                           "message", "role", "assistant", "content",
                           "refusal", "logprobs",
                           "finish_reason",
                           json_object_get(json_object_get(root,
                                                           "promptFeedback"),
                                           "blockReason")
                           ? "content_filter" : "stop");

        if (choice == NULL || json_array_append_new(choices, choice) != 0) {
            goto done;
        }
    }

    memset(&usage, 0, sizeof(ai_usage_t));
    ai_gem_usage(&usage, json_object_get(root, "usageMetadata"));

    s = ai_json_str(root, "responseId");

    if (ai_buf_append_str(&id, "chatcmpl-") != 0
        || ai_buf_append_str(&id, s ? s : "gemini") != 0)
    {
        goto done;
    }

    resp = json_pack("{s:s,s:s,s:I,s:s%,s:O,s:o}",
                     "id", id.data,
                     "object", "chat.completion",
                     "created", (json_int_t) ai_created(o),
                     "model", o->client_model ? o->client_model : "",
                       o->client_model ? o->client_model_len : 0,
                     "choices", choices,
                     "usage",
                     ai_openai_usage(usage.prompt_tokens,
                                     usage.completion_tokens,
                                     usage.cached_tokens));

    if (resp != NULL) {
        rc = ai_buf_append_json(out, resp);
    }

done:

    json_decref(resp);
    json_decref(choices);
    json_decref(root);
    ai_buf_free(&text);
    ai_buf_free(&id);

    return rc;
}


/*
 * batchEmbedContents reports no token counts; usage is zero rather than
 * a guess.
 */

static int
ai_gem_embed_response(json_t *root, const ai_translate_opts_t *o,
    ai_buf_t *out)
{
    int      rc;
    size_t   i;
    json_t  *embs, *e, *data, *values, *resp;

    embs = json_object_get(root, "embeddings");

    if (!json_is_array(embs)) {
        e = json_object_get(root, "embedding");

        if (!json_is_object(e)) {
            return -1;
        }

        embs = json_pack("[O]", e);

    } else {
        json_incref(embs);
    }

    data = json_array();
    rc = -1;

    json_array_foreach(embs, i, e) {
        values = json_object_get(e, "values");

        if (!json_is_array(values)
            || json_array_append_new(data,
                                     json_pack("{s:s,s:I,s:O}", "object",
                                               "embedding", "index",
                                               (json_int_t) i, "embedding",
                                               values)) != 0)
        {
            goto done;
        }
    }

    resp = json_pack("{s:s,s:O,s:s%,s:{s:i,s:i}}", "object", "list",
                     "data", data,
                     "model", o->client_model ? o->client_model : "",
                       o->client_model ? o->client_model_len : 0,
                     "usage", "prompt_tokens", 0, "total_tokens", 0);

    if (resp) {
        rc = ai_buf_append_json(out, resp);
        json_decref(resp);
    }

done:

    json_decref(data);
    json_decref(embs);

    return rc;
}


static int
ai_gem_error(json_t *root, int status, ai_buf_t *out)
{
    json_t      *e;
    const char  *msg, *type, *code;

    e = json_object_get(root, "error");

    if (!json_is_object(e)) {
        return ai_status_error(out, status >= 400 ? status : 502);
    }

    ai_gem_error_type(ai_json_str(e, "status"), &type, &code);

    if (code == NULL && ai_json_long(e, "code", 0) == 429) {
        type = "rate_limit_error";
        code = "rate_limit_exceeded";
    }

    msg = ai_json_str(e, "message");

    return ai_openai_error(out, msg ? msg : "The provider failed.", type,
                           code);
}


static void
ai_gem_error_type(const char *status, const char **type, const char **code)
{
    static const struct {
        const char  *status;
        const char  *type;
        const char  *code;
    } map[] = {
        { "INVALID_ARGUMENT", "invalid_request_error", "invalid_argument" },
        { "FAILED_PRECONDITION", "invalid_request_error",
          "failed_precondition" },
        { "OUT_OF_RANGE", "invalid_request_error", "out_of_range" },
        { "UNAUTHENTICATED", "authentication_error", "invalid_api_key" },
        { "PERMISSION_DENIED", "permission_error", "permission_denied" },
        { "NOT_FOUND", "not_found_error", "not_found" },
        { "RESOURCE_EXHAUSTED", "rate_limit_error", "rate_limit_exceeded" },
        { "INTERNAL", "server_error", "internal" },
        { "UNAVAILABLE", "server_error", "unavailable" },
        { "DEADLINE_EXCEEDED", "server_error", "timeout" },
    };

    size_t  i;

    for (i = 0; status && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(status, map[i].status) == 0) {
            *type = map[i].type;
            *code = map[i].code;
            return;
        }
    }

    *type = "server_error";
    *code = NULL;
}


static const char *
ai_gem_finish(const char *reason, int tools)
{
    static const char  *filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
        "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
    };

    size_t  i;

    if (reason && strcmp(reason, "MAX_TOKENS") == 0) {
        return "length";
    }

    for (i = 0; reason && i < sizeof(filtered) / sizeof(filtered[0]); i++) {
        if (strcmp(reason, filtered[i]) == 0) {
            return "content_filter";
        }
    }

    /* Gemini says STOP after a function call */

    return tools ? "tool_calls" : "stop";
}


static void
ai_gem_usage(ai_usage_t *u, json_t *meta)
{
    if (!json_is_object(meta)) {
        return;
    }

    u->prompt_tokens = ai_json_long(meta, "promptTokenCount", 0)
                       + ai_json_long(meta, "toolUsePromptTokenCount", 0);
    u->completion_tokens = ai_json_long(meta, "candidatesTokenCount", 0)
                           + ai_json_long(meta, "thoughtsTokenCount", 0);
    u->cached_tokens = ai_json_long(meta, "cachedContentTokenCount", 0);
    u->seen = 1;
}


int
ai_gemini_stream_init(ai_stream_t *s)
{
    s->on_event = ai_gem_stream_event;
    s->on_finish = ai_gem_stream_finish;
    snprintf(s->id, sizeof(s->id), "chatcmpl-gemini");

    return 0;
}


/*
 * Every event is a whole GenerateContentResponse whose parts are new
 * text; usage in each is cumulative, so the last one wins.
 */

static int
ai_gem_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out)
{
    int          rc, index, tool;
    size_t       i, j;
    char         callid[32], *args;
    json_t      *root, *e, *cand, *parts, *p, *fc;
    unsigned     bit;
    const char  *str, *type, *code, *fr;

    root = json_loadb(ev->data, ev->data_len, 0, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }

    rc = 0;
    e = json_object_get(root, "error");

    if (json_is_object(e)) {
        ai_gem_error_type(ai_json_str(e, "status"), &type, &code);
        str = ai_json_str(e, "message");
        rc = ai_stream_error(s, str ? str : "The provider failed.", type,
                             code, out);
        goto done;
    }

    str = ai_json_str(root, "responseId");

    if (!s->started && str) {
        snprintf(s->id, sizeof(s->id), "chatcmpl-%s", str);
    }

    ai_gem_usage(&s->usage, json_object_get(root, "usageMetadata"));

    json_array_foreach(json_object_get(root, "candidates"), i, cand) {
        index = (int) ai_json_long(cand, "index", (long) i);

        if (index < 0 || index >= AI_MAX_CHOICES) {
            rc = -1;
            goto done;
        }

        bit = 1u << index;
        parts = json_object_get(json_object_get(cand, "content"), "parts");

        json_array_foreach(parts, j, p) {
            if (json_is_true(json_object_get(p, "thought"))) {
                continue;
            }

            str = ai_json_str(p, "text");

            if (str && *str) {
                rc = ai_chunk(s, index, json_pack("{s:s}", "content", str),
                              NULL, out);

                if (rc != 0) {
                    goto done;
                }
            }

            fc = json_object_get(p, "functionCall");

            if (!json_is_object(fc)) {
                continue;
            }

            tool = s->tools++;
            s->tool_choices |= bit;
            snprintf(callid, sizeof(callid), "call_%d", tool);
            args = json_dumps(json_object_get(fc, "args"),
                              JSON_COMPACT | JSON_ENCODE_ANY);
            str = ai_json_str(fc, "name");

            rc = ai_chunk(s, index,
                     json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}",
                               "tool_calls",
                                 "index", tool,
                                 "id", callid,
                                 "type", "function",
                                 "function",
                                   "name", str ? str : "",
                                   "arguments", args ? args : "{}"),
                     NULL, out);
            free(args);

            if (rc != 0) {
                goto done;
            }
        }

        fr = ai_json_str(cand, "finishReason");

        if (fr && !(s->finished & bit)) {
            s->finished |= bit;
            rc = ai_chunk(s, index, NULL,
                          ai_gem_finish(fr, (s->tool_choices & bit) != 0),
                          out);

            if (rc != 0) {
                goto done;
            }
        }
    }

    if (json_array_size(json_object_get(root, "candidates")) == 0
        && json_object_get(json_object_get(root, "promptFeedback"),
                           "blockReason"))
    {
        s->finished |= 1;
        rc = ai_chunk(s, 0, NULL, "content_filter", out);
    }

done:

    json_decref(root);

    return rc;
}


static int
ai_gem_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out)
{
    (void) complete;

    if (s->finished) {
        return ai_stream_close(s, out);
    }

    return ai_stream_error(s, "The upstream stream ended before it was "
                           "complete.", "server_error", "upstream_incomplete",
                           out);
}
