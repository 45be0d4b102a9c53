/*
 * fuzz_wire_id.c: libFuzzer target for a peer's identity, the answer to GET /v1/id (pool/wire.h,
 * wire_id_decode; `make fuzz`).
 *
 * Whatever answers at a peer's address says which key its signed requests are made for. Decoding
 * must never crash or leak; a key it accepts is written, lower-case, in the input, and re-encodes
 * to an answer that decodes to the same key; a refusal says why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[128] = "";
    key_pub_t k, back;
    int rc = wire_id_decode((const char *)data, size, &k, why, sizeof(why));
    if (rc != 0) {
        if ((rc != -EPROTO && rc != -EMSGSIZE) || !why[0])
            abort();
        return 0;
    }
    char hex[KEY_PUB_HEX_LEN + 1], buf[WIRE_MAX_ID_BODY];
    key_pub_to_hex(&k, hex);
    if (!memmem(data, size, hex, KEY_PUB_HEX_LEN))
        abort();
    int n = wire_id_encode(&k, buf, sizeof(buf));
    if (n <= 0 || wire_id_decode(buf, (size_t)n, &back, why, sizeof(why)) != 0 || !key_pub_equal(&k, &back))
        abort();
    return 0;
}
