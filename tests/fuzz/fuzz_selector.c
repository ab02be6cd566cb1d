/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for mf_selector: parses arbitrary bytes as a selector.
 * An accepted selector must format back to exactly the input (one canonical
 * spelling), re-parse and copy to an equal selector, match itself, and hold
 * a value without NUL. A refusal must be PROTO_SELECTOR with a printable
 * detail. The input is also split in two to check that mf_selector_cmp is
 * antisymmetric and agrees with matching.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)     \
    do {             \
        if (!(c)) {  \
            abort(); \
        }            \
    } while (0)

static bool parse_checked(const uint8_t *data, size_t size, struct mf_selector *out)
{
    static char text[MF_SELECTOR_STR_MAX];
    memset(out, 0, sizeof(*out));
    mf_err_clear();
    mf_res r = mf_selector_parse((const char *)data, size, out);
    if (!mf_ok(r)) {
        CHECK(r.err == MF_ERR_PROTO_SELECTOR);
        CHECK(out->value == NULL);
        const char *d = mf_err_detail();
        CHECK(d[0] != '\0');
        for (const char *p = d; *p != '\0'; p++) {
            CHECK(*p >= 0x20 && *p < 0x7f);
        }
        return false;
    }
    CHECK(out->value != NULL);
    CHECK(strlen(out->value) == out->value_len);
    CHECK(out->value_len > 0 && out->value_len <= MF_SELECTOR_VALUE_MAX);

    CHECK(mf_ok(mf_selector_format(out, text, sizeof(text))));
    CHECK(strlen(text) == size && memcmp(text, data, size) == 0);

    struct mf_selector again = {0}, copy = {0};
    CHECK(mf_ok(mf_selector_parse(text, strlen(text), &again)));
    CHECK(mf_selector_cmp(out, &again) == 0);
    CHECK(mf_ok(mf_selector_make(out->kind, out->value, &copy)));
    CHECK(mf_selector_cmp(out, &copy) == 0);
    mf_selector_cleanup(&copy);
    CHECK(mf_ok(mf_selector_copy(out, &copy)));
    CHECK(mf_selector_cmp(&again, &copy) == 0);
    CHECK(mf_selectors_match(out, 1, &copy, 1));
    mf_selector_cleanup(&copy);
    mf_selector_cleanup(&again);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mf_selector whole, a, b;
    if (parse_checked(data, size, &whole)) {
        mf_selector_cleanup(&whole);
    }
    /* two selectors from one input, split at its first newline */
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL) {
        return 0;
    }
    size_t n1 = (size_t)(nl - data);
    bool ok_a = parse_checked(data, n1, &a);
    bool ok_b = parse_checked(nl + 1, size - n1 - 1, &b);
    if (ok_a && ok_b) {
        int ab = mf_selector_cmp(&a, &b);
        int ba = mf_selector_cmp(&b, &a);
        CHECK((ab > 0) - (ab < 0) == -((ba > 0) - (ba < 0)));
        CHECK((ab == 0) == mf_selectors_match(&a, 1, &b, 1));
        struct mf_selector both[2] = {a, b};
        CHECK(mf_selectors_match(&a, 1, both, 2) && mf_selectors_match(&b, 1, both, 2));
        CHECK(mf_selectors_match(both, 2, both, 2));
        CHECK((ab == 0) == mf_selectors_match(both, 2, &a, 1));
    }
    if (ok_a) {
        mf_selector_cleanup(&a);
    }
    if (ok_b) {
        mf_selector_cleanup(&b);
    }
    return 0;
}
