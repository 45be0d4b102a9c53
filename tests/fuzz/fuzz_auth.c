/*
 * fuzz_auth.c: libFuzzer target for a signed request's headers (pool/auth.h; `make fuzz`).
 *
 * The four Preon-* header values come from whoever connects. The input is split at newlines into
 * the four values and a request target. Parsing must never crash; what it accepts must be well
 * formed (its time has only digits, so it round-trips through the signed text), a random
 * signature over it must not verify, and the replay guard must admit the pair once only. The
 * whole input is also read as a trust list (every key kept must round-trip through its hex) and as
 * endorsements (each kept one must round-trip through its line; with one bit of its signature
 * changed it never verifies).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *field[5] = {NULL};
    char *p = buf;
    for (int i = 0; i < 5 && p; i++) {
        field[i] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        p = nl ? nl + 1 : NULL;
    }
    auth_req_t r;
    int rc = auth_parse(field[0], field[1], field[2], field[3], &r);
    if (rc == 0) {
        key_pub_t to;
        memset(&to, 7, sizeof(to));
        const char *target = field[4] && field[4][0] ? field[4] : "/v1/hello";
        char msg[AUTH_MAX_MESSAGE];
        int n = auth_message(msg, sizeof(msg), "GET", target, &to, r.time_ms, r.nonce);
        if (n >= 0 && (size_t)n >= sizeof(msg))
            abort();
        if (auth_verify(&r, "GET", target, &to)) /* a signature made up by the fuzzer never verifies */
            abort();
        auth_guard_t *g = auth_guard_new(1000, 8);
        if (auth_guard_admit(g, &r.key, r.time_ms, r.nonce, r.time_ms) != 0 ||
            auth_guard_admit(g, &r.key, r.time_ms, r.nonce, r.time_ms) != -EALREADY)
            abort();
        auth_guard_free(g);
    } else if (rc != -ENOENT && rc != -EINVAL) {
        abort();
    }
    /* the same bytes as a trust list: every key kept parses back from its own hex */
    key_pub_t *keys = NULL;
    size_t n = 0, bad = 0;
    char why[128];
    auth_trust_parse((const char *)data, size, &keys, &n, &bad, why, sizeof(why));
    for (size_t i = 0; i < n; i++) {
        char hex[KEY_PUB_HEX_LEN + 1];
        key_pub_t back;
        key_pub_to_hex(&keys[i], hex);
        if (key_pub_from_hex(hex, KEY_PUB_HEX_LEN, &back) != 0 || !key_pub_equal(&back, &keys[i]))
            abort();
    }
    free(keys);
    /* and as a file of endorsements: each kept one formats back to a line that parses the same,
     * and a signature the fuzzer made up never verifies */
    auth_endorsement_t *es = NULL;
    n = bad = 0;
    auth_endorsement_parse((const char *)data, size, &es, &n, &bad, why, sizeof(why));
    for (size_t i = 0; i < n; i++) {
        char line[AUTH_ENDORSE_LINE_MAX];
        auth_endorsement_format(&es[i], line, sizeof(line));
        auth_endorsement_t *back = NULL;
        size_t nb = 0, bb = 0;
        auth_endorsement_parse(line, strlen(line), &back, &nb, &bb, NULL, 0);
        if (nb != 1 || bb != 0 || memcmp(&back[0], &es[i], sizeof(es[i])) != 0)
            abort();
        auth_endorsement_t t = es[i]; /* (a seed may carry a real one): one bit off never verifies */
        t.sig[0] ^= 1;
        if (auth_endorsement_verify(&t))
            abort();
        free(back);
    }
    free(es);
    free(buf);
    return 0;
}
