/*
 * GGUF (v2, v3) parser over a file mapped in memory.  Everything is
 * validated against the file size before it is trusted; afterwards every
 * pointer in the parsed structure is safe to read.
 */

#ifndef AIE_GGUF_H
#define AIE_GGUF_H

#include <stddef.h>
#include <stdint.h>


typedef enum {
    AIE_GGUF_UINT8 = 0,
    AIE_GGUF_INT8,
    AIE_GGUF_UINT16,
    AIE_GGUF_INT16,
    AIE_GGUF_UINT32,
    AIE_GGUF_INT32,
    AIE_GGUF_FLOAT32,
    AIE_GGUF_BOOL,
    AIE_GGUF_STRING,
    AIE_GGUF_ARRAY,
    AIE_GGUF_UINT64,
    AIE_GGUF_INT64,
    AIE_GGUF_FLOAT64,
    AIE_GGUF_N_TYPES
} aie_gguf_type_t;

typedef struct {
    const char     *key;          /* not NUL-terminated */
    size_t          key_len;
    uint32_t        type;
    const uint8_t  *value;        /* scalars, strings (u64 length + bytes) */
    uint32_t        array_type;   /* arrays: element type, count, elements */
    uint64_t        array_n;
    const uint8_t  *array_data;
} aie_gguf_kv_t;

typedef struct {
    const char     *name;
    size_t          name_len;
    uint32_t        n_dims;
    int64_t         ne[4];        /* ne[0] is the row length */
    uint32_t        type;
    uint64_t        offset;
    const uint8_t  *data;
    size_t          nbytes;
} aie_gguf_tensor_t;

typedef struct {
    uint32_t            version;
    uint64_t            n_kv;
    uint64_t            n_tensors;
    aie_gguf_kv_t      *kv;
    aie_gguf_tensor_t  *tensors;
    size_t              alignment;
    size_t              data_offset;
    const uint8_t      *base;
    size_t              size;
} aie_gguf_t;


int aie_gguf_parse(aie_gguf_t *gguf, const uint8_t *data, size_t size,
    char *err, size_t errlen);
void aie_gguf_free(aie_gguf_t *gguf);

const aie_gguf_kv_t *aie_gguf_find(const aie_gguf_t *gguf, const char *key);
/* 0 found, -1 absent, -2 present with a type that does not fit */
int aie_gguf_get_int(const aie_gguf_t *gguf, const char *key, int64_t *out);
int aie_gguf_get_float(const aie_gguf_t *gguf, const char *key, float *out);
int aie_gguf_get_str(const aie_gguf_t *gguf, const char *key,
    const char **str, size_t *len);
const aie_gguf_tensor_t *aie_gguf_find_tensor(const aie_gguf_t *gguf,
    const char *name);

/* reads a little-endian value from validated memory */
static inline uint64_t
aie_gguf_u64(const uint8_t *p)
{
    uint64_t  v;

    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

#endif /* AIE_GGUF_H */
