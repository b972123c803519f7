/*
 * GGUF parser.  The layout (docs/gguf.md in ggml): magic "GGUF", u32
 * version, u64 tensor count, u64 key/value count, the key/values, the tensor
 * infos, padding to general.alignment, then the tensor data.  Nothing read
 * from the file is used as a size, count or offset before it is checked
 * against what is left of the file.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"


#define AIE_GGUF_MAX_DEPTH  3      /* arrays of arrays of arrays */
#define AIE_GGUF_MAX_NAME   256


typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
    char           *err;
    size_t          errlen;
} aie_gguf_reader_t;


static int
aie_gguf_fail(aie_gguf_reader_t *rd, const char *fmt, ...)
{
    va_list  ap;

    if (rd->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(rd->err, rd->errlen, fmt, ap);
        va_end(ap);
    }

    return -1;
}


static size_t
aie_gguf_left(const aie_gguf_reader_t *rd)
{
    return (size_t) (rd->end - rd->p);
}


static int
aie_gguf_read(aie_gguf_reader_t *rd, void *out, size_t n, const char *what)
{
    if (aie_gguf_left(rd) < n) {
        return aie_gguf_fail(rd, "gguf: truncated file reading %s", what);
    }

    memcpy(out, rd->p, n);
    rd->p += n;

    return 0;
}


static int
aie_gguf_read_str(aie_gguf_reader_t *rd, const char **s, size_t *len,
    const char *what)
{
    uint64_t  n = 0;

    if (aie_gguf_read(rd, &n, 8, what) != 0) {
        return -1;
    }

    if (n > aie_gguf_left(rd)) {
        return aie_gguf_fail(rd, "gguf: %s length %llu runs past the end "
                             "of the file", what, (unsigned long long) n);
    }

    *s = (const char *) rd->p;
    *len = (size_t) n;
    rd->p += n;

    return 0;
}


static size_t
aie_gguf_scalar_size(uint32_t type)
{
    static const size_t  sizes[AIE_GGUF_N_TYPES] = {
        1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8
    };

    return type < AIE_GGUF_N_TYPES ? sizes[type] : 0;
}


/* skips one value of the given type, checking it lies inside the file */
static int
aie_gguf_skip_value(aie_gguf_reader_t *rd, uint32_t type, int depth)
{
    uint32_t     elem_type = 0;
    uint64_t     n = 0, i;
    size_t       size, len;
    const char  *s;

    if (type == AIE_GGUF_STRING) {
        return aie_gguf_read_str(rd, &s, &len, "string value");
    }

    if (type == AIE_GGUF_ARRAY) {
        if (depth >= AIE_GGUF_MAX_DEPTH) {
            return aie_gguf_fail(rd, "gguf: arrays nested too deep");
        }

        if (aie_gguf_read(rd, &elem_type, 4, "array type") != 0
            || aie_gguf_read(rd, &n, 8, "array length") != 0)
        {
            return -1;
        }

        if (elem_type >= AIE_GGUF_N_TYPES) {
            return aie_gguf_fail(rd, "gguf: bad array element type %u",
                                 elem_type);
        }

        size = aie_gguf_scalar_size(elem_type);

        if (size != 0) {
            if (n > aie_gguf_left(rd) / size) {
                return aie_gguf_fail(rd, "gguf: array of %llu elements runs "
                                     "past the end of the file",
                                     (unsigned long long) n);
            }

            rd->p += n * size;
            return 0;
        }

        /* strings and arrays take at least 8 bytes each */
        if (n > aie_gguf_left(rd) / 8) {
            return aie_gguf_fail(rd, "gguf: array of %llu elements runs "
                                 "past the end of the file",
                                 (unsigned long long) n);
        }

        for (i = 0; i < n; i++) {
            if (aie_gguf_skip_value(rd, elem_type, depth + 1) != 0) {
                return -1;
            }
        }

        return 0;
    }

    size = aie_gguf_scalar_size(type);
    if (size == 0) {
        return aie_gguf_fail(rd, "gguf: bad value type %u", type);
    }

    if (aie_gguf_left(rd) < size) {
        return aie_gguf_fail(rd, "gguf: truncated file reading a value");
    }

    rd->p += size;

    return 0;
}


static int
aie_gguf_parse_kv(aie_gguf_reader_t *rd, aie_gguf_kv_t *kv)
{
    if (aie_gguf_read_str(rd, &kv->key, &kv->key_len, "key") != 0
        || aie_gguf_read(rd, &kv->type, 4, "value type") != 0)
    {
        return -1;
    }

    if (kv->type >= AIE_GGUF_N_TYPES) {
        return aie_gguf_fail(rd, "gguf: key \"%.*s\" has bad type %u",
                             (int) (kv->key_len < 64 ? kv->key_len : 64),
                             kv->key, kv->type);
    }

    kv->value = rd->p;

    if (kv->type == AIE_GGUF_ARRAY && aie_gguf_left(rd) >= 12) {
        memcpy(&kv->array_type, rd->p, 4);
        kv->array_n = aie_gguf_u64(rd->p + 4);
        kv->array_data = rd->p + 12;
    }

    return aie_gguf_skip_value(rd, kv->type, 0);
}


static int
aie_gguf_parse_tensor(aie_gguf_reader_t *rd, aie_gguf_tensor_t *t)
{
    uint32_t  i;
    uint64_t  ne = 0;
    int64_t   rows;
    size_t    row_size;

    if (aie_gguf_read_str(rd, &t->name, &t->name_len, "tensor name") != 0
        || aie_gguf_read(rd, &t->n_dims, 4, "tensor dimensions") != 0)
    {
        return -1;
    }

    if (t->name_len == 0 || t->name_len > AIE_GGUF_MAX_NAME) {
        return aie_gguf_fail(rd, "gguf: tensor name of %zu bytes",
                             t->name_len);
    }

    if (t->n_dims == 0 || t->n_dims > 4) {
        return aie_gguf_fail(rd, "gguf: tensor \"%.*s\" has %u dimensions",
                             (int) t->name_len, t->name, t->n_dims);
    }

    rows = 1;

    for (i = 0; i < 4; i++) {
        t->ne[i] = 1;
    }

    for (i = 0; i < t->n_dims; i++) {
        if (aie_gguf_read(rd, &ne, 8, "tensor shape") != 0) {
            return -1;
        }

        /* no dimension or product may exceed 2^40 elements */
        if (ne == 0 || ne > ((uint64_t) 1 << 40)
            || (i > 0 && (uint64_t) rows > ((uint64_t) 1 << 40) / ne))
        {
            return aie_gguf_fail(rd, "gguf: tensor \"%.*s\" has a bad shape",
                                 (int) t->name_len, t->name);
        }

        t->ne[i] = (int64_t) ne;
        if (i > 0) {
            rows *= (int64_t) ne;
        }
    }

    if (aie_gguf_read(rd, &t->type, 4, "tensor type") != 0
        || aie_gguf_read(rd, &t->offset, 8, "tensor offset") != 0)
    {
        return -1;
    }

    if (!aie_type_known(t->type)) {
        return aie_gguf_fail(rd, "gguf: tensor \"%.*s\" has unsupported "
                             "type %u (F32, F16, Q4_0 and Q8_0 are)",
                             (int) t->name_len, t->name, t->type);
    }

    row_size = aie_type_row_size((aie_type_t) t->type, t->ne[0]);
    if (row_size == 0) {
        return aie_gguf_fail(rd, "gguf: tensor \"%.*s\" rows of %lld do not "
                             "fit %s blocks", (int) t->name_len, t->name,
                             (long long) t->ne[0],
                             aie_type_name((aie_type_t) t->type));
    }

    t->nbytes = row_size * (size_t) rows;

    return 0;
}


int
aie_gguf_parse(aie_gguf_t *gguf, const uint8_t *data, size_t size,
    char *err, size_t errlen)
{
    aie_gguf_reader_t         rd;
    uint32_t                  magic = 0;
    uint64_t                  i, j;
    int64_t                   align;
    size_t                    data_size;
    const aie_gguf_tensor_t  *t;

    memset(gguf, 0, sizeof(aie_gguf_t));
    gguf->base = data;
    gguf->size = size;
    gguf->alignment = 32;

    rd.p = data;
    rd.end = data + size;
    rd.err = err;
    rd.errlen = errlen;

    if (aie_gguf_read(&rd, &magic, 4, "magic") != 0) {
        return -1;
    }

    if (memcmp(&magic, "GGUF", 4) != 0) {
        return aie_gguf_fail(&rd, "gguf: bad magic");
    }

    if (aie_gguf_read(&rd, &gguf->version, 4, "version") != 0) {
        return -1;
    }

    if (gguf->version != 2 && gguf->version != 3) {
        return aie_gguf_fail(&rd, "gguf: version %u is not supported "
                             "(2 and 3 are)", gguf->version);
    }

    if (aie_gguf_read(&rd, &gguf->n_tensors, 8, "tensor count") != 0
        || aie_gguf_read(&rd, &gguf->n_kv, 8, "key count") != 0)
    {
        return -1;
    }

    /* a key/value takes at least 13 bytes, a tensor info at least 29 */
    if (gguf->n_kv > aie_gguf_left(&rd) / 13
        || gguf->n_tensors > aie_gguf_left(&rd) / 29)
    {
        return aie_gguf_fail(&rd, "gguf: %llu keys and %llu tensors cannot "
                             "fit in the file",
                             (unsigned long long) gguf->n_kv,
                             (unsigned long long) gguf->n_tensors);
    }

    gguf->kv = calloc(gguf->n_kv + 1, sizeof(aie_gguf_kv_t));
    gguf->tensors = calloc(gguf->n_tensors + 1, sizeof(aie_gguf_tensor_t));
    if (gguf->kv == NULL || gguf->tensors == NULL) {
        aie_gguf_fail(&rd, "gguf: out of memory");
        aie_gguf_free(gguf);
        return -1;
    }

    for (i = 0; i < gguf->n_kv; i++) {
        if (aie_gguf_parse_kv(&rd, &gguf->kv[i]) != 0) {
            aie_gguf_free(gguf);
            return -1;
        }
    }

    switch (aie_gguf_get_int(gguf, "general.alignment", &align)) {
    case 0:
        if (align <= 0 || align > 65536 || (align & (align - 1)) != 0) {
            aie_gguf_fail(&rd, "gguf: bad general.alignment %lld",
                                 (long long) align);
            aie_gguf_free(gguf);
            return -1;
        }
        gguf->alignment = (size_t) align;
        break;
    case -2:
        aie_gguf_fail(&rd, "gguf: general.alignment is not an "
                             "integer");
        aie_gguf_free(gguf);
        return -1;
    }

    for (i = 0; i < gguf->n_tensors; i++) {
        if (aie_gguf_parse_tensor(&rd, &gguf->tensors[i]) != 0) {
            aie_gguf_free(gguf);
            return -1;
        }
    }

    gguf->data_offset = (size_t) (rd.p - data);
    gguf->data_offset = (gguf->data_offset + gguf->alignment - 1)
                        / gguf->alignment * gguf->alignment;

    if (gguf->data_offset > size) {
        aie_gguf_fail(&rd, "gguf: truncated file: no tensor data");
        aie_gguf_free(gguf);
        return -1;
    }

    data_size = size - gguf->data_offset;

    for (i = 0; i < gguf->n_tensors; i++) {
        aie_gguf_tensor_t  *tt = &gguf->tensors[i];

        if (tt->offset % gguf->alignment != 0) {
            aie_gguf_fail(&rd, "gguf: tensor \"%.*s\" is not aligned",
                                 (int) tt->name_len, tt->name);
            aie_gguf_free(gguf);
            return -1;
        }

        if (tt->offset > data_size || tt->nbytes > data_size - tt->offset) {
            aie_gguf_fail(&rd, "gguf: tensor \"%.*s\" runs past the "
                                 "end of the file (truncated?)",
                                 (int) tt->name_len, tt->name);
            aie_gguf_free(gguf);
            return -1;
        }

        tt->data = data + gguf->data_offset + tt->offset;
    }

    /* duplicate names would make lookups ambiguous */
    for (i = 0; i < gguf->n_tensors; i++) {
        t = &gguf->tensors[i];
        for (j = i + 1; j < gguf->n_tensors && j < i + 4096; j++) {
            if (t->name_len == gguf->tensors[j].name_len
                && memcmp(t->name, gguf->tensors[j].name, t->name_len) == 0)
            {
                aie_gguf_fail(&rd, "gguf: duplicate tensor \"%.*s\"",
                                     (int) t->name_len, t->name);
                aie_gguf_free(gguf);
                return -1;
            }
        }
    }

    return 0;
}


void
aie_gguf_free(aie_gguf_t *gguf)
{
    free(gguf->kv);
    free(gguf->tensors);
    gguf->kv = NULL;
    gguf->tensors = NULL;
    gguf->n_kv = 0;
    gguf->n_tensors = 0;
}


const aie_gguf_kv_t *
aie_gguf_find(const aie_gguf_t *gguf, const char *key)
{
    uint64_t  i;
    size_t    len = strlen(key);

    for (i = 0; i < gguf->n_kv; i++) {
        if (gguf->kv[i].key_len == len
            && memcmp(gguf->kv[i].key, key, len) == 0)
        {
            return &gguf->kv[i];
        }
    }

    return NULL;
}


int
aie_gguf_get_int(const aie_gguf_t *gguf, const char *key, int64_t *out)
{
    const aie_gguf_kv_t  *kv = aie_gguf_find(gguf, key);
    const uint8_t        *v;
    uint64_t              u;

    if (kv == NULL) {
        return -1;
    }

    v = kv->value;

    switch (kv->type) {
    case AIE_GGUF_UINT8:  *out = *v; return 0;
    case AIE_GGUF_INT8:   *out = (int8_t) *v; return 0;
    case AIE_GGUF_UINT16: { uint16_t x; memcpy(&x, v, 2); *out = x; return 0; }
    case AIE_GGUF_INT16:  { int16_t x; memcpy(&x, v, 2); *out = x; return 0; }
    case AIE_GGUF_UINT32: { uint32_t x; memcpy(&x, v, 4); *out = x; return 0; }
    case AIE_GGUF_INT32:  { int32_t x; memcpy(&x, v, 4); *out = x; return 0; }
    case AIE_GGUF_INT64:  memcpy(out, v, 8); return 0;
    case AIE_GGUF_UINT64:
        u = aie_gguf_u64(v);
        if (u > INT64_MAX) {
            return -2;
        }
        *out = (int64_t) u;
        return 0;
    }

    return -2;
}


int
aie_gguf_get_float(const aie_gguf_t *gguf, const char *key, float *out)
{
    const aie_gguf_kv_t  *kv = aie_gguf_find(gguf, key);
    double                d;

    if (kv == NULL) {
        return -1;
    }

    if (kv->type == AIE_GGUF_FLOAT32) {
        memcpy(out, kv->value, 4);
        return 0;
    }

    if (kv->type == AIE_GGUF_FLOAT64) {
        memcpy(&d, kv->value, 8);
        *out = (float) d;
        return 0;
    }

    return -2;
}


int
aie_gguf_get_str(const aie_gguf_t *gguf, const char *key, const char **str,
    size_t *len)
{
    const aie_gguf_kv_t  *kv = aie_gguf_find(gguf, key);

    if (kv == NULL) {
        return -1;
    }

    if (kv->type != AIE_GGUF_STRING) {
        return -2;
    }

    *len = (size_t) aie_gguf_u64(kv->value);
    *str = (const char *) kv->value + 8;

    return 0;
}


const aie_gguf_tensor_t *
aie_gguf_find_tensor(const aie_gguf_t *gguf, const char *name)
{
    uint64_t  i;
    size_t    len = strlen(name);

    for (i = 0; i < gguf->n_tensors; i++) {
        if (gguf->tensors[i].name_len == len
            && memcmp(gguf->tensors[i].name, name, len) == 0)
        {
            return &gguf->tensors[i];
        }
    }

    return NULL;
}
