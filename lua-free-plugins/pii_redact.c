/*
 * pii_redact: masks (or blocks) personal data and secrets in prompts and,
 * optionally, in responses, streamed ones included.
 *
 *   types=email,phone,card,iban,ip,secret   (default: all)
 *   mode=mask|block                          (default: mask)
 *   apply=request|response|both              (default: request)
 *
 * Detection is a single pass over the text: a 256-entry class table finds
 * the few positions where a match can start (a word boundary and a start
 * character of an enabled type), cheap checks in C discard most of them,
 * and the survivors are confirmed by anchored PCRE2 patterns (JIT) plus the
 * checksums (Luhn for cards, mod-97 for IBANs, inet_pton for IPv6).
 *
 * Streams.  Every decision at a position is either final (the text after it
 * was not needed, or was available) or "partial": the attempt ran into the
 * end of the text received so far (PCRE2_PARTIAL_HARD and the same rule in
 * the C checks).  Text before the first partial position is emitted, masked;
 * the rest is held back until the next delta.  So a match split at any byte
 * is caught, and the held text is at most the longest prefix a match can
 * have, per type:
 *
 *   email 345 bytes (64 local + @ + 4 labels of 63 + dots + 24 TLD),
 *   ip 45 (IPv6), phone 49, iban 43, card 24, secret 66 (a private key's
 *   BEGIN line; longer tokens are masked as soon as their minimal prefix is
 *   seen and the rest of the token is dropped as it arrives),
 *
 * and only while the trailing text can still become such a match (a
 * trailing word is held in case it is an email's local part).  Private key
 * blocks: from the BEGIN line, text is dropped until the END line or 16 KB.
 * Held text starts at an ASCII byte and emitted text never ends inside a
 * UTF-8 sequence.
 */

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#if defined(__SSE2__) && !defined(PII_SCALAR)
#include <emmintrin.h>
#define PII_SSE2  1
#endif

#include "aigw_plugin.h"
#include "plugin_util.h"


#define PII_PEM_CAP     16384
#define PII_AT_UNKNOWN  ((size_t) -1)


enum {
    T_EMAIL = 0,
    T_PHONE,
    T_CARD,
    T_IBAN,
    T_IP,
    T_SECRET,
    T_KEY,                  /* private key block (types=secret) */
    T_N
};

static const char *pii_type_names[] = {
    "email", "phone", "card", "iban", "ip", "secret", "secret"
};

static const char *pii_placeholders[] = {
    "[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]", "[SECRET]",
    "[PRIVATE_KEY]"
};


enum {
    RX_EMAIL = 0,
    RX_CARD,
    RX_IPV4,
    RX_PHONE_INTL,
    RX_PHONE_NAT,
    RX_IBAN,
    RX_SK,
    RX_AWS,
    RX_GH,
    RX_GHPAT,
    RX_SLACK,
    RX_BEARER,
    RX_PEM_BEGIN,
    RX_PEM_END,
    RX_N
};

/* all anchored (compiled with PCRE2_ANCHORED) except RX_PEM_END */
static const char *pii_patterns[RX_N] = {
    "[A-Za-z0-9._%+-]{1,64}@"
        "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,4}"
        "[A-Za-z]{2,24}(?![A-Za-z0-9-])",
    "(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?"
        "|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?![0-9])",
    "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}"
        "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9]|\\.[0-9])",
    "\\+[1-9][0-9]{0,3}(?:[ .-]?(?:\\([0-9]{1,4}\\)|[0-9]{1,4})){2,6}"
        "(?![0-9]|[ .-][0-9])",
    "(?:\\([0-9]{2,4}\\)[ .-]?|[0-9]{2,4}[ .-])[0-9]{3,4}[ .-][0-9]{3,5}"
        "(?![0-9]|[ .-][0-9])",
    "[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
        "(?![A-Za-z0-9])",
    "sk-[A-Za-z0-9_-]{20}",
    "(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    "gh[pousr]_[A-Za-z0-9]{36}",
    "github_pat_[A-Za-z0-9_]{22}",
    "xox[abprs]-[A-Za-z0-9-]{10}",
    "[Bb]earer[ \\t]{1,8}[A-Za-z0-9._~+/=-]{16}",
    "-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----",
    "-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----"
};


/* character classes */
#define C_ALNUM    0x0001
#define C_LOCAL    0x0002      /* email local part */
#define C_DIGIT    0x0004
#define C_HEX      0x0008
#define C_UPPER    0x0010
#define C_NUMRUN   0x0020      /* may appear in a phone/card/IPv4 */
#define C_V6       0x0040      /* may appear in an IPv6 address */
#define C_TK_SK    0x0080      /* token alphabets of secrets */
#define C_TK_GHPAT 0x0100
#define C_TK_SLACK 0x0200
#define C_TK_BEAR  0x0400

/* start classes: which detectors may start at a byte */
#define S_EMAIL    0x01
#define S_NUM      0x02
#define S_IP6      0x04
#define S_IBAN     0x08
#define S_SECRET   0x10

static uint16_t       pii_cls[256];
static unsigned char  pii_start[256];
static int            pii_tables_ready;


enum {
    SW_NONE = 0,
    SW_TOKEN,
    SW_PEM
};


typedef struct {
    const char  *prefix;
    size_t       len;
    int          rx;
    uint16_t     token;          /* alphabet to extend over, 0: fixed */
    int          type;
} pii_secret_t;

static const pii_secret_t  pii_secrets[] = {
    { "sk-", 3, RX_SK, C_TK_SK, T_SECRET },
    { "AKIA", 4, RX_AWS, 0, T_SECRET },
    { "ASIA", 4, RX_AWS, 0, T_SECRET },
    { "gh", 2, RX_GH, C_ALNUM, T_SECRET },
    { "github_pat_", 11, RX_GHPAT, C_TK_GHPAT, T_SECRET },
    { "xox", 3, RX_SLACK, C_TK_SLACK, T_SECRET },
    { "Bearer", 6, RX_BEARER, C_TK_BEAR, T_SECRET },
    { "bearer", 6, RX_BEARER, C_TK_BEAR, T_SECRET },
    { "-----BEGIN", 10, RX_PEM_BEGIN, 0, T_KEY },
};


typedef struct {
    unsigned     types;          /* 1 << T_* */
    int          block;
    int          apply;
    unsigned     start_mask;
    int          jit;
    pcre2_code  *rx[RX_N];
} pii_conf_t;


typedef struct {
    unsigned       choice;
    unsigned char  prev;         /* byte before held text (left context) */
    unsigned char  prev2;        /* and the one before it */
    unsigned char  swallow;      /* SW_*: dropping the rest of a secret */
    uint16_t       token;
    size_t         swallowed;
    pu_buf_t       held;
} pii_stream_t;


typedef struct {
    pcre2_match_data  *md;
    pii_stream_t      *streams;
    size_t             nstreams;
    pu_buf_t           work;
    pu_buf_t           out;
} pii_state_t;


/* one scan: the text, and whether more of it may follow */
typedef struct {
    const pii_conf_t   *cf;
    pcre2_match_data   *md;
    const char         *s;
    size_t              len;
    int                 final;
    size_t              next_at;     /* next '@' (PII_AT_UNKNOWN: look) */
    size_t              next_colon;  /* next ':' */
} pii_scan_t;


enum {
    R_NONE = 0,
    R_MATCH,
    R_PARTIAL
};


typedef struct {
    size_t    end;
    int       type;
    int       swallow;
    uint16_t  token;
} pii_hit_t;


static void
pii_tables_init(void)
{
    int       c;
    uint16_t  m;

    if (pii_tables_ready) {
        return;
    }

    for (c = 0; c < 256; c++) {
        m = 0;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9'))
        {
            m |= C_ALNUM | C_LOCAL | C_TK_SK | C_TK_GHPAT | C_TK_SLACK
                 | C_TK_BEAR;
        }

        if (c >= '0' && c <= '9') {
            m |= C_DIGIT | C_HEX | C_NUMRUN | C_V6;
        }

        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
            m |= C_HEX | C_V6;
        }

        if (c >= 'A' && c <= 'Z') {
            m |= C_UPPER;
        }

        if (strchr("._%+-", c) && c) {
            m |= C_LOCAL;
        }

        if (strchr(" .()+-", c) && c) {
            m |= C_NUMRUN;
        }

        if ((c == ':' || c == '.') && c) {
            m |= C_V6;
        }

        if (c == '_' || c == '-') {
            m |= C_TK_SK;
        }

        if (c == '_') {
            m |= C_TK_GHPAT;
        }

        if (c == '-') {
            m |= C_TK_SLACK;
        }

        if (strchr("._~+/=-", c) && c) {
            m |= C_TK_BEAR;
        }

        pii_cls[c] = m;
    }

    for (c = 0; c < 256; c++) {
        m = 0;

        if (pii_cls[c] & C_LOCAL) {
            m |= S_EMAIL;
        }

        if ((pii_cls[c] & C_DIGIT) || c == '+' || c == '(') {
            m |= S_NUM;
        }

        if ((pii_cls[c] & C_HEX) || c == ':') {
            m |= S_IP6;
        }

        if (pii_cls[c] & C_UPPER) {
            m |= S_IBAN;
        }

        if (c && strchr("sAgxBb-", c)) {
            m |= S_SECRET;
        }

        pii_start[c] = (unsigned char) m;
    }

    pii_tables_ready = 1;
}


static int
pii_rx(const pii_scan_t *x, int id, size_t at, size_t *start, size_t *end)
{
    int          rc;
    uint32_t     opts;
    PCRE2_SIZE  *ov;

    opts = x->final ? 0 : PCRE2_PARTIAL_HARD;

    if (x->cf->jit) {
        rc = pcre2_jit_match(x->cf->rx[id], (PCRE2_SPTR) x->s, x->len, at,
                             opts, x->md, NULL);
    } else {
        rc = pcre2_match(x->cf->rx[id], (PCRE2_SPTR) x->s, x->len, at, opts,
                         x->md, NULL);
    }

    ov = pcre2_get_ovector_pointer(x->md);

    if (rc >= 0) {
        if (start) {
            *start = ov[0];
        }
        *end = ov[1];
        return R_MATCH;
    }

    if (rc == PCRE2_ERROR_PARTIAL) {
        if (start) {
            *start = ov[0];
        }
        return R_PARTIAL;
    }

    return R_NONE;
}


static int
pii_luhn(const char *s, size_t len)
{
    int     sum, d, dbl, n;
    size_t  i;

    sum = 0;
    dbl = 0;
    n = 0;

    for (i = len; i-- > 0; ) {
        if (s[i] < '0' || s[i] > '9') {
            continue;
        }

        d = s[i] - '0';
        if (dbl) {
            d *= 2;
            if (d > 9) {
                d -= 9;
            }
        }

        sum += d;
        dbl = !dbl;
        n++;
    }

    return n >= 13 && n <= 19 && sum % 10 == 0;
}


static int
pii_iban_ok(const char *s, size_t len)
{
    char      a[40];
    size_t    i, n;
    unsigned  r, c;

    n = 0;
    for (i = 0; i < len; i++) {
        if (s[i] != ' ') {
            if (n == sizeof(a)) {
                return 0;
            }
            a[n++] = s[i];
        }
    }

    if (n < 15 || n > 34) {
        return 0;
    }

    /* the first four characters go last; letters count as 10..35 */
    r = 0;
    for (i = 0; i < n; i++) {
        c = (unsigned char) a[(i + 4) % n];
        if (c >= '0' && c <= '9') {
            r = (r * 10 + (c - '0')) % 97;
        } else {
            r = (r * 100 + (c - 'A' + 10)) % 97;
        }
    }

    return r == 1;
}


static int
pii_digits(const char *s, size_t len)
{
    int     n;
    size_t  i;

    n = 0;
    for (i = 0; i < len; i++) {
        n += (s[i] >= '0' && s[i] <= '9');
    }

    return n;
}


/*
 * Whether byte ch occurs in s[i..i+reach], or the text ends within reach
 * (more may follow).  *cache keeps the next occurrence for the whole scan.
 */
static int
pii_near(pii_scan_t *x, size_t *cache, int ch, size_t i, size_t reach)
{
    const char  *p;

    if (*cache == PII_AT_UNKNOWN || *cache < i) {
        p = memchr(x->s + i, ch, x->len - i);
        *cache = p ? (size_t) (p - x->s) : x->len;
    }

    return *cache - i <= reach;
}


static int
pii_try_email(pii_scan_t *x, size_t i, pii_hit_t *h)
{
    size_t  j;

    /* most words have no '@' within reach: skip them without a look */
    if (!pii_near(x, &x->next_at, '@', i, 64)) {
        return R_NONE;
    }

    /* only a run of local-part characters followed by '@' is worth PCRE2 */
    for (j = i; j < x->len && j - i <= 64
                && (pii_cls[(unsigned char) x->s[j]] & C_LOCAL); j++)
    {
        /* void */
    }

    if (j - i > 64) {
        return R_NONE;
    }

    if (j == x->len) {
        return x->final ? R_NONE : R_PARTIAL;
    }

    if (x->s[j] != '@') {
        return R_NONE;
    }

    h->type = T_EMAIL;
    return pii_rx(x, RX_EMAIL, i, NULL, &h->end);
}


static int
pii_try_num(const pii_scan_t *x, size_t i, unsigned types, pii_hit_t *h)
{
    int     r, d, dot;
    size_t  j;

    /*
     * Every pattern here only consumes [0-9 .()+-] and looks one or two
     * bytes past its end: in a run with too few digits and no early dot,
     * none of them can match.
     */
    d = 0;
    dot = 0;
    for (j = i; j < x->len && j - i < 52
                && (pii_cls[(unsigned char) x->s[j]] & C_NUMRUN); j++)
    {
        if (x->s[j] >= '0' && x->s[j] <= '9') {
            d++;
        } else if (x->s[j] == '.' && j - i <= 3) {
            dot = 1;
        }
    }

    if (j < x->len && d < 8 && !dot) {
        return R_NONE;
    }

    if (x->s[i] == '+') {
        if (!(types & (1u << T_PHONE))) {
            return R_NONE;
        }

        h->type = T_PHONE;
        r = pii_rx(x, RX_PHONE_INTL, i, NULL, &h->end);
        if (r == R_MATCH) {
            d = pii_digits(x->s + i, h->end - i);
            return (d >= 8 && d <= 15) ? R_MATCH : R_NONE;
        }
        return r;
    }

    if (x->s[i] != '(' && (types & (1u << T_CARD))) {
        h->type = T_CARD;
        r = pii_rx(x, RX_CARD, i, NULL, &h->end);
        if (r == R_PARTIAL) {
            return R_PARTIAL;
        }
        if (r == R_MATCH && pii_luhn(x->s + i, h->end - i)) {
            return R_MATCH;
        }
    }

    if (x->s[i] != '(' && (types & (1u << T_IP))) {
        h->type = T_IP;
        r = pii_rx(x, RX_IPV4, i, NULL, &h->end);
        if (r != R_NONE) {
            return r;
        }
    }

    if (types & (1u << T_PHONE)) {
        h->type = T_PHONE;
        r = pii_rx(x, RX_PHONE_NAT, i, NULL, &h->end);
        if (r != R_NONE) {
            return r;
        }
    }

    return R_NONE;
}


static int
pii_try_ip6(const pii_scan_t *x, size_t i, pii_hit_t *h)
{
    char    a[INET6_ADDRSTRLEN + 8];
    size_t  j, n, colons, hex;
    struct in6_addr  addr;

    colons = 0;
    hex = 0;
    for (j = i; j < x->len && j - i <= 45
                && (pii_cls[(unsigned char) x->s[j]] & C_V6); j++)
    {
        colons += (x->s[j] == ':');
        hex += (x->s[j] != ':' && x->s[j] != '.');
    }

    if (j - i > 45) {
        return R_NONE;
    }

    if (j == x->len && !x->final) {
        return R_PARTIAL;
    }

    if (colons < 2 || hex == 0
        || (j < x->len && (pii_cls[(unsigned char) x->s[j]] & C_ALNUM))
        || (j < x->len && x->s[j] == '_'))
    {
        return R_NONE;
    }

    n = j - i;
    memcpy(a, x->s + i, n);

    /* a sentence may end right after the address: "... at fe80::1." */
    while (n > 2 && (a[n - 1] == '.' || (a[n - 1] == ':' && a[n - 2] != ':')))
    {
        n--;
    }

    a[n] = '\0';

    if (inet_pton(AF_INET6, a, &addr) != 1) {
        return R_NONE;
    }

    h->type = T_IP;
    h->end = i + n;
    return R_MATCH;
}


static int
pii_try_iban(const pii_scan_t *x, size_t i, pii_hit_t *h)
{
    int     r;
    size_t  k, n;

    n = x->len - i < 4 ? x->len - i : 4;
    for (k = 0; k < n; k++) {
        if (!(pii_cls[(unsigned char) x->s[i + k]]
              & (k < 2 ? C_UPPER : C_DIGIT)))
        {
            return R_NONE;
        }
    }

    if (n < 4) {
        return x->final ? R_NONE : R_PARTIAL;
    }

    h->type = T_IBAN;
    r = pii_rx(x, RX_IBAN, i, NULL, &h->end);
    if (r == R_MATCH && !pii_iban_ok(x->s + i, h->end - i)) {
        return R_NONE;
    }

    return r;
}


static int
pii_try_secret(const pii_scan_t *x, size_t i, pii_hit_t *h)
{
    int                  r, partial;
    size_t               k, n, e;
    const pii_secret_t  *p;

    partial = 0;

    /* "so", "see", "go", "be": the second byte rules most words out */
    if (i + 1 < x->len) {
        switch (x->s[i + 1]) {
        case 'k': case 'K': case 'S': case 'h': case 'i': case 'o': case 'e':
        case '-':
            break;
        default:
            return R_NONE;
        }
    }

    for (k = 0; k < sizeof(pii_secrets) / sizeof(pii_secrets[0]); k++) {
        p = &pii_secrets[k];

        if (p->prefix[0] != x->s[i]) {
            continue;
        }

        n = x->len - i < p->len ? x->len - i : p->len;
        if (memcmp(x->s + i, p->prefix, n) != 0) {
            continue;
        }

        if (n < p->len) {
            partial |= !x->final;
            continue;
        }

        r = pii_rx(x, p->rx, i, NULL, &e);
        if (r == R_PARTIAL) {
            partial = 1;
            continue;
        }

        if (r == R_NONE) {
            continue;
        }

        if (partial) {
            break;
        }

        h->type = p->type;
        h->swallow = p->type == T_KEY ? SW_PEM : SW_NONE;
        h->token = p->token;

        if (p->token) {
            /* the minimal token is masked; the rest of it is dropped */
            while (e < x->len && (pii_cls[(unsigned char) x->s[e]] & p->token))
            {
                e++;
            }

            if (e == x->len && !x->final) {
                h->swallow = SW_TOKEN;
            }
        }

        h->end = e;
        return R_MATCH;
    }

    return partial ? R_PARTIAL : R_NONE;
}


/*
 * Where the run of class cls that ends the text starts: the text's length
 * when the text is final (nothing can follow to complete a match) or ends
 * in another byte.
 */
static size_t
pii_tail_run(const pii_scan_t *x, unsigned cls)
{
    size_t  t = x->len;

    if (x->final) {
        return t;
    }

    while (t > 0 && (pii_cls[(unsigned char) x->s[t - 1]] & cls)) {
        t--;
    }

    return t;
}


/*
 * The start classes worth trying from i on, and up to where that holds:
 * emails need an '@' and IPv6 addresses a ':' within reach (or the end of
 * the text, where more may follow); most prose has neither, so most word
 * starts need no look at all.
 */
static unsigned
pii_mask_at(pii_scan_t *x, size_t i, size_t *until)
{
    unsigned  mask;
    size_t    lim, u, t;

    mask = x->cf->start_mask;
    u = x->len;

    if (mask & S_EMAIL) {
        pii_near(x, &x->next_at, '@', i, 0);
        lim = x->next_at < x->len ? x->next_at : x->len;
        if (lim > i + 64) {
            mask &= ~S_EMAIL;
            u = lim - 64 < u ? lim - 64 : u;
        } else if (x->next_at < x->len && x->next_at + 1 < u) {
            u = x->next_at + 1;
        } else if (x->next_at >= x->len) {
            /*
             * no '@' ahead: only a local-part run that reaches the end of
             * a streamed text may still become an address (the next delta
             * may bring the '@'); before that run nothing can
             */
            t = pii_tail_run(x, C_LOCAL);
            if (i < t) {
                mask &= ~S_EMAIL;
                u = t < u ? t : u;
            }
        }
    }

    if (mask & S_IP6) {
        pii_near(x, &x->next_colon, ':', i, 0);
        lim = x->next_colon < x->len ? x->next_colon : x->len;
        if (lim > i + 45) {
            mask &= ~S_IP6;
            u = lim - 45 < u ? lim - 45 : u;
        } else if (x->next_colon < x->len && x->next_colon + 1 < u) {
            u = x->next_colon + 1;
        } else if (x->next_colon >= x->len) {
            /* no ':' ahead: the same for an address's run of hex, ':', '.' */
            t = pii_tail_run(x, C_V6);
            if (i < t) {
                mask &= ~S_IP6;
                u = t < u ? t : u;
            }
        }
    }

    *until = u > i ? u : i + 1;
    return mask;
}


#ifdef PII_SSE2

/* 0xff where a byte is in [lo, lo + n], unsigned */
static inline __m128i
pii_in(__m128i v, int lo, int n)
{
    __m128i  d = _mm_sub_epi8(v, _mm_set1_epi8((char) lo));

    return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8((char) n)), d);
}


static inline __m128i
pii_eq(__m128i v, int c)
{
    return _mm_cmpeq_epi8(v, _mm_set1_epi8((char) c));
}

#endif


/*
 * The first i in [from, end) where a detector of mask may start: a byte of
 * one of mask's start classes (pii_start[]) with no letter or digit before
 * it; end when there is none.  The byte loop over the tables finds the
 * same place; with SSE2 the classes are computed 16 bytes at a time (most
 * of a text starts nothing: the scan was ~2/3 of pii_redact's time).
 */
static size_t
pii_next_start(const pii_scan_t *x, const pii_stream_t *st, size_t from,
    size_t end, unsigned mask)
{
    const unsigned char  *s = (const unsigned char *) x->s;
    size_t                i = from;
    unsigned char         left;
#ifdef PII_SSE2
    __m128i               v, p, digit, upper, lower, start, alnum;
    unsigned              m;

    if (i == 0 && i < end) {
        if ((pii_start[s[0]] & mask) && !(pii_cls[st->prev] & C_ALNUM)) {
            return 0;
        }
        i = 1;
    }

    for ( /* void */ ; i + 16 <= end; i += 16) {
        v = _mm_loadu_si128((const __m128i *) (s + i));
        p = _mm_loadu_si128((const __m128i *) (s + i - 1));

        digit = pii_in(v, '0', 9);
        upper = pii_in(v, 'A', 25);
        lower = pii_in(v, 'a', 25);
        start = _mm_setzero_si128();

        if (mask & S_EMAIL) {
            start = _mm_or_si128(_mm_or_si128(digit, upper),
                    _mm_or_si128(lower,
                    _mm_or_si128(_mm_or_si128(pii_eq(v, '.'), pii_eq(v, '_')),
                    _mm_or_si128(_mm_or_si128(pii_eq(v, '%'), pii_eq(v, '+')),
                                 pii_eq(v, '-')))));
        }
        if (mask & S_NUM) {
            start = _mm_or_si128(start, _mm_or_si128(digit,
                        _mm_or_si128(pii_eq(v, '+'), pii_eq(v, '('))));
        }
        if (mask & S_IP6) {
            start = _mm_or_si128(start, _mm_or_si128(
                        _mm_or_si128(digit, pii_eq(v, ':')),
                        _mm_or_si128(pii_in(v, 'a', 5), pii_in(v, 'A', 5))));
        }
        if (mask & S_IBAN) {
            start = _mm_or_si128(start, upper);
        }
        if (mask & S_SECRET) {
            start = _mm_or_si128(start, _mm_or_si128(
                        _mm_or_si128(_mm_or_si128(pii_eq(v, 's'),
                                                  pii_eq(v, 'A')),
                                     _mm_or_si128(pii_eq(v, 'g'),
                                                  pii_eq(v, 'x'))),
                        _mm_or_si128(_mm_or_si128(pii_eq(v, 'B'),
                                                  pii_eq(v, 'b')),
                                     pii_eq(v, '-'))));
        }

        alnum = _mm_or_si128(pii_in(p, '0', 9),
                             _mm_or_si128(pii_in(p, 'A', 25),
                                          pii_in(p, 'a', 25)));
        m = (unsigned) _mm_movemask_epi8(_mm_andnot_si128(alnum, start));

        if (m) {
            return i + (size_t) __builtin_ctz(m);
        }
    }
#endif

    for ( /* void */ ; i < end; i++) {
        left = i ? s[i - 1] : st->prev;
        if ((pii_start[s[i]] & mask) && !(pii_cls[left] & C_ALNUM)) {
            return i;
        }
    }

    return end;
}


/* Decides what starts at i; detectors run in a fixed order. */
static int
pii_try(pii_scan_t *x, size_t i, unsigned start, unsigned char left,
    unsigned char left2, pii_hit_t *h)
{
    int       r;
    unsigned  c, lc, types;

    c = (unsigned char) x->s[i];
    lc = pii_cls[left];
    types = x->cf->types;

    h->swallow = SW_NONE;
    h->token = 0;

    if ((start & S_SECRET) && !(lc & C_ALNUM) && left != '_'
        && !(c == '-' && left == '-'))
    {
        r = pii_try_secret(x, i, h);
        if (r != R_NONE) {
            return r;
        }
    }

    if ((start & S_EMAIL) && !(lc & C_LOCAL)) {
        r = pii_try_email(x, i, h);
        if (r != R_NONE) {
            return r;
        }
    }

    /* not inside a longer number: "4111 1111" does not start at "1111" */
    if ((start & S_NUM) && !(lc & C_ALNUM) && left != '.' && left != '+'
        && !((left == ' ' || left == '-') && (pii_cls[left2] & C_DIGIT)))
    {
        r = pii_try_num(x, i, types, h);
        if (r != R_NONE) {
            return r;
        }
    }

    if ((start & S_IP6) && !(lc & C_V6) && left != '_'
        && pii_near(x, &x->next_colon, ':', i, 45))
    {
        r = pii_try_ip6(x, i, h);
        if (r != R_NONE) {
            return r;
        }
    }

    if ((start & S_IBAN) && !(lc & C_ALNUM)) {
        r = pii_try_iban(x, i, h);
        if (r != R_NONE) {
            return r;
        }
    }

    return R_NONE;
}


/*
 * Scans x->s: appends the text to emit (masked) to out, returns in *hold the
 * offset from which text is held back, and updates the stream's swallow
 * state and left context.  In block mode returns the first type found
 * (T_*), else -1.
 */
static int
pii_scan(pii_scan_t *x, pii_stream_t *st, pu_buf_t *out, size_t *hold,
    int *oom)
{
    int            r;
    size_t         i, upto, s, e, emit_end, mask_until, wend;
    unsigned       start, mask;
    pii_hit_t      h;
    unsigned char  left, left2, c;

    i = 0;
    upto = 0;
    mask = 0;
    mask_until = 0;
    *hold = x->len;

    for ( ;; ) {

        /* dropping the rest of a secret that was already masked */

        if (st->swallow == SW_TOKEN) {
            while (i < x->len && (pii_cls[(unsigned char) x->s[i]] & st->token))
            {
                i++;
            }

            if (i < x->len || x->final) {
                st->swallow = SW_NONE;
            }

            upto = i;

        } else if (st->swallow == SW_PEM) {
            r = pii_rx(x, RX_PEM_END, i, &s, &e);
            if (r == R_MATCH) {
                i = e;
                st->swallow = SW_NONE;

            } else if (r == R_PARTIAL) {
                st->swallowed += s - i;
                upto = s;
                *hold = s;
                goto done;

            } else {
                st->swallowed += x->len - i;
                i = x->len;
            }

            upto = i;

            if (st->swallowed > PII_PEM_CAP) {
                st->swallow = SW_NONE;
            }
        }

        /* a word start needs a non-alphanumeric byte before it */
        if (i < x->len && (pii_cls[(unsigned char) x->s[i]] & C_ALNUM)
            && (pii_cls[i ? (unsigned char) x->s[i - 1] : st->prev] & C_ALNUM))
        {
            while (i < x->len && (pii_cls[(unsigned char) x->s[i]] & C_ALNUM))
            {
                i++;
            }
        }

        while (i < x->len) {
            if (i >= mask_until) {
                mask = pii_mask_at(x, i, &mask_until);
            }

            /* skip to where something may start, within the mask's reach */
            wend = mask_until < x->len ? mask_until : x->len;
            i = pii_next_start(x, st, i, wend, mask);
            if (i >= wend) {
                continue;
            }

            c = (unsigned char) x->s[i];
            start = pii_start[c] & mask;
            left = i ? (unsigned char) x->s[i - 1] : st->prev;

            if (start == 0 || (pii_cls[left] & C_ALNUM)) {
                goto next;
            }

            left2 = i > 1 ? (unsigned char) x->s[i - 2]
                    : i == 1 ? st->prev : st->prev2;

            r = pii_try(x, i, start, left, left2, &h);
            if (r == R_NONE) {
                goto next;
            }

            if (r == R_PARTIAL) {
                if (pu_buf_append(out, x->s + upto, i - upto) != 0) {
                    *oom = 1;
                }
                upto = i;
                *hold = i;
                goto done;
            }

            if (x->cf->block) {
                return h.type;
            }

            if (pu_buf_append(out, x->s + upto, i - upto) != 0
                || pu_buf_append(out, pii_placeholders[h.type],
                                 strlen(pii_placeholders[h.type])) != 0)
            {
                *oom = 1;
            }

            i = upto = h.end;
            st->swallow = (unsigned char) h.swallow;
            st->token = h.token;
            st->swallowed = 0;
            break;

        next:

            /* nothing starts inside the rest of a word */
            i++;
            if (pii_cls[c] & C_ALNUM) {
                while (i < x->len
                       && (pii_cls[(unsigned char) x->s[i]] & C_ALNUM))
                {
                    i++;
                }
            }
        }

        if (i >= x->len) {
            break;
        }
    }

    emit_end = x->final ? x->len : pu_utf8_complete(x->s, x->len);
    if (emit_end < upto) {
        emit_end = upto;
    }

    if (pu_buf_append(out, x->s + upto, emit_end - upto) != 0) {
        *oom = 1;
    }

    *hold = emit_end;

done:

    if (*hold > 1) {
        st->prev2 = (unsigned char) x->s[*hold - 2];
        st->prev = (unsigned char) x->s[*hold - 1];

    } else if (*hold == 1) {
        st->prev2 = st->prev;
        st->prev = (unsigned char) x->s[0];
    }

    return -1;
}


static int
pii_configure(const aigw_kv_t *kv, size_t n, void **conf, char *err,
    size_t errlen)
{
    int          rc, t;
    size_t       i, k, len;
    uint32_t     opts;
    PCRE2_SIZE   off;
    const char  *p, *q;
    pii_conf_t  *cf;
    PCRE2_UCHAR  msg[128];

    pii_tables_init();

    cf = calloc(1, sizeof(pii_conf_t));
    if (cf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    cf->types = (1u << T_N) - 1;
    cf->apply = PU_APPLY_REQUEST;

    for (i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "mode") == 0) {
            if (strcmp(kv[i].value, "mask") == 0) {
                cf->block = 0;
            } else if (strcmp(kv[i].value, "block") == 0) {
                cf->block = 1;
            } else {
                snprintf(err, errlen, "invalid mode \"%s\" (expected mask "
                         "or block)", kv[i].value);
                goto failed;
            }

        } else if (strcmp(kv[i].key, "apply") == 0) {
            if (pu_parse_apply(kv[i].value, &cf->apply) != 0) {
                snprintf(err, errlen, "invalid apply \"%s\" (expected "
                         "request, response or both)", kv[i].value);
                goto failed;
            }

        } else if (strcmp(kv[i].key, "types") == 0) {
            cf->types = 0;

            for (p = kv[i].value; ; p = q + 1) {
                q = strchr(p, ',');
                len = q ? (size_t) (q - p) : strlen(p);

                for (t = 0; t < T_KEY; t++) {
                    if (strlen(pii_type_names[t]) == len
                        && memcmp(pii_type_names[t], p, len) == 0)
                    {
                        break;
                    }
                }

                if (t == T_KEY) {
                    snprintf(err, errlen, "unknown type \"%.*s\" in types= "
                             "(known: email, phone, card, iban, ip, secret)",
                             (int) len, p);
                    goto failed;
                }

                cf->types |= 1u << t;
                if (t == T_SECRET) {
                    cf->types |= 1u << T_KEY;
                }

                if (q == NULL) {
                    break;
                }
            }

        } else {
            snprintf(err, errlen, "unknown option \"%s\" (expected mode, "
                     "apply or types)", kv[i].key);
            goto failed;
        }
    }

    if (cf->types & (1u << T_EMAIL)) {
        cf->start_mask |= S_EMAIL;
    }
    if (cf->types & ((1u << T_PHONE) | (1u << T_CARD) | (1u << T_IP))) {
        cf->start_mask |= S_NUM;
    }
    if (cf->types & (1u << T_IP)) {
        cf->start_mask |= S_IP6;
    }
    if (cf->types & (1u << T_IBAN)) {
        cf->start_mask |= S_IBAN;
    }
    if (cf->types & (1u << T_SECRET)) {
        cf->start_mask |= S_SECRET;
    }

    cf->jit = 1;

    for (k = 0; k < RX_N; k++) {
        opts = k == RX_PEM_END ? 0 : PCRE2_ANCHORED;
        cf->rx[k] = pcre2_compile((PCRE2_SPTR) pii_patterns[k],
                                  PCRE2_ZERO_TERMINATED, opts, &rc, &off,
                                  NULL);
        if (cf->rx[k] == NULL) {
            pcre2_get_error_message(rc, msg, sizeof(msg));
            snprintf(err, errlen, "internal pattern %zu: %s", k,
                     (char *) msg);
            goto failed;
        }

        if (pcre2_jit_compile(cf->rx[k],
                              PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD)
            != 0)
        {
            cf->jit = 0;              /* no JIT here: the interpreter */
        }
    }

    *conf = cf;
    return 0;

failed:

    for (k = 0; k < RX_N; k++) {
        pcre2_code_free(cf->rx[k]);
    }
    free(cf);
    return -1;
}


static void
pii_conf_free(void *conf)
{
    size_t       k;
    pii_conf_t  *cf = conf;

    for (k = 0; k < RX_N; k++) {
        pcre2_code_free(cf->rx[k]);
    }
    free(cf);
}


static int
pii_request_start(void *conf, aigw_request_t *req, void **state)
{
    pii_state_t  *s;

    (void) conf;
    (void) req;

    s = calloc(1, sizeof(pii_state_t));
    if (s == NULL) {
        return -1;
    }

    s->md = pcre2_match_data_create(4, NULL);
    if (s->md == NULL) {
        free(s);
        return -1;
    }

    *state = s;
    return 0;
}


static void
pii_request_end(void *conf, void *state)
{
    size_t        i;
    pii_state_t  *s = state;

    (void) conf;

    if (s == NULL) {
        return;
    }

    for (i = 0; i < s->nstreams; i++) {
        pu_buf_free(&s->streams[i].held);
    }

    free(s->streams);
    pu_buf_free(&s->work);
    pu_buf_free(&s->out);
    pcre2_match_data_free(s->md);
    free(s);
}


static void
pii_on_request(void *conf, void *state, aigw_request_t *req,
    aigw_verdict_t *v)
{
    int                 oom, found, modified;
    size_t              i, hold;
    pii_scan_t          x;
    pii_stream_t        st;
    pii_state_t        *s = state;
    const pii_conf_t   *cf = conf;

    if (!(cf->apply & PU_APPLY_REQUEST)) {
        return;
    }

    oom = 0;
    modified = 0;

    for (i = 0; i < req->ntexts; i++) {
        memset(&st, 0, sizeof(pii_stream_t));

        x.cf = cf;
        x.md = s->md;
        x.s = req->texts[i].text;
        x.len = req->texts[i].len;
        x.final = 1;
        x.next_at = PII_AT_UNKNOWN;
        x.next_colon = PII_AT_UNKNOWN;

        s->out.len = 0;
        found = pii_scan(&x, &st, &s->out, &hold, &oom);

        if (found >= 0) {
            aigw_verdict_reject(v, 400, "invalid_request_error",
                                "pii_detected", "messages", "the request "
                                "was blocked: it contains personal data or "
                                "a secret (%s)", pii_type_names[found]);
            return;
        }

        if (oom) {
            break;
        }

        if (s->out.len != x.len || memcmp(s->out.data, x.s, x.len) != 0) {
            if (req->set_text(req, i, s->out.data ? s->out.data : "",
                              s->out.len) != 0)
            {
                oom = 1;
                break;
            }

            modified = 1;
        }
    }

    if (oom) {
        aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                            "pii_redact ran out of memory");
        return;
    }

    if (modified) {
        v->action = AIGW_MODIFIED;
    }
}


static pii_stream_t *
pii_stream(pii_state_t *s, unsigned choice)
{
    size_t         i;
    pii_stream_t  *p;

    for (i = 0; i < s->nstreams; i++) {
        if (s->streams[i].choice == choice) {
            return &s->streams[i];
        }
    }

    p = realloc(s->streams, (s->nstreams + 1) * sizeof(pii_stream_t));
    if (p == NULL) {
        return NULL;
    }

    s->streams = p;
    p = &s->streams[s->nstreams++];
    memset(p, 0, sizeof(pii_stream_t));
    p->choice = choice;
    return p;
}


static void
pii_text(const pii_conf_t *cf, pii_state_t *s, aigw_delta_t *d,
    aigw_verdict_t *v, int final)
{
    int            oom, found;
    size_t         hold, held;
    pii_scan_t     x;
    pii_stream_t  *st;

    if (!(cf->apply & PU_APPLY_RESPONSE)) {
        return;
    }

    st = pii_stream(s, d->choice);
    if (st == NULL) {
        goto nomem;
    }

    if (st->held.len == 0 && d->len == 0 && st->swallow == SW_NONE) {
        return;
    }

    held = st->held.len;

    if (held == 0) {
        /* nothing held: the delta is read where it is */
        x.s = d->len ? d->text : "";
        x.len = d->len;

    } else {
        /* the text held back last time, then the new delta */
        s->work.len = 0;
        if (pu_buf_append(&s->work, st->held.data, st->held.len) != 0
            || pu_buf_append(&s->work, d->text, d->len) != 0)
        {
            goto nomem;
        }

        x.s = s->work.data;
        x.len = s->work.len;
    }

    x.cf = cf;
    x.md = s->md;
    x.final = final;
    x.next_at = PII_AT_UNKNOWN;
    x.next_colon = PII_AT_UNKNOWN;

    oom = 0;
    s->out.len = 0;
    found = pii_scan(&x, st, &s->out, &hold, &oom);

    if (found >= 0) {
        st->held.len = 0;
        aigw_verdict_reject(v, 400, "invalid_request_error", "pii_detected",
                            NULL, "the response was stopped: it contains "
                            "personal data or a secret (%s)",
                            pii_type_names[found]);
        return;
    }

    st->held.len = 0;
    if (oom || pu_buf_append(&st->held, x.s + hold, x.len - hold) != 0) {
        goto nomem;
    }

    if (final) {
        st->swallow = SW_NONE;
    }

    if (held == 0 && hold == x.len && s->out.len == d->len
        && (d->len == 0 || memcmp(s->out.data, d->text, d->len) == 0))
    {
        /* nothing masked, nothing held: the delta goes on as it is */
        return;
    }

    d->out = s->out.data ? s->out.data : "";
    d->out_len = s->out.len;
    v->action = AIGW_MODIFIED;
    return;

nomem:

    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "pii_redact ran out of memory");
}


static void
pii_on_delta(void *conf, void *state, aigw_delta_t *d, aigw_verdict_t *v)
{
    pii_text(conf, state, d, v, 0);
}


static void
pii_on_delta_flush(void *conf, void *state, aigw_delta_t *d,
    aigw_verdict_t *v)
{
    pii_text(conf, state, d, v, 1);
}


static const aigw_plugin_t  pii_redact_plugin = {
    AIGW_PLUGIN_ABI_VERSION,
    "pii_redact",
    "1.0",
    pii_configure,
    pii_conf_free,
    pii_request_start,
    pii_request_end,
    pii_on_request,
    pii_on_delta,
    pii_on_delta_flush,
    NULL,
    AIGW_PLUGIN_TEXT_ONLY
};

AIGW_PLUGIN_EXPORT(pii_redact_plugin)
