
/*
 * The engine's model loader on any bytes, through the public API only:
 * aie_model_load() takes a path, so the input is written to a memfd and
 * loaded as /proc/self/fd/N (a regular file that mmap accepts; nothing
 * touches the disk).  A model that loads must be usable: its info is
 * read, a few words are tokenized and decoded, and when it is small a
 * token is evaluated (so shapes the loader let through are safe to
 * compute on).  Loading always ends with aie_model_free(): a leak fails.
 */

#include <sys/mman.h>
#include <unistd.h>

#include "aigw_engine.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                fd, n, tokens[64];
    char               path[64], err[256], text[256];
    size_t             off;
    ssize_t            w;
    aie_seq_t         *seq;
    aie_model_t       *m;
    aie_model_info_t   info;

    fd = memfd_create("fuzz-gguf", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);

    for (off = 0; off < size; off += (size_t) w) {
        w = write(fd, data + off, size - off);
        FUZZ_CHECK(w > 0);
    }

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    err[0] = '\0';
    m = aie_model_load(path, NULL, err, sizeof(err));
    close(fd);

    if (m == NULL) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return 0;
    }

    aie_model_info(m, &info);
    FUZZ_CHECK(info.vocab_size > 0 && info.dim > 0 && info.n_layers > 0);

    if (info.has_tokenizer) {
        n = aie_tokenize(m, "Once upon a time", 16, 1, tokens, 64);
        FUZZ_CHECK(n >= 0);
        aie_detokenize(m, tokens, n < 64 ? n : 64, text, sizeof(text));
    }

    /* one forward step on small models only: the point is the shapes */

    if ((size_t) info.dim * (size_t) info.n_layers * (size_t) info.hidden_dim
        <= 1u << 20 && info.vocab_size <= 4096)
    {
        seq = aie_seq_new(m, 8);

        if (seq != NULL) {
            tokens[0] = 0;
            aie_eval(seq, tokens, 1, NULL);
            aie_seq_free(seq);
        }
    }

    aie_model_free(m);

    return 0;
}
