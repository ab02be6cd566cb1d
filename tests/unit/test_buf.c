/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_buf (capped buffers, bounded cursors) and mf_err.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "mf_test.h"

static void test_mf_buf_append_at_cap_ok(void **state)
{
    (void)state;
    struct mf_buf b;
    mf_buf_init(&b, 8, 0);
    ASSERT_OK(mf_buf_append(&b, "12345678", 8));
    assert_int_equal(b.len, 8);
    assert_string_equal(mf_buf_cstr(&b), "12345678");
    mf_buf_cleanup(&b);
}

static void test_mf_buf_append_cap_plus_one_refused(void **state)
{
    (void)state;
    struct mf_buf b;
    mf_buf_init(&b, 8, 0);
    ASSERT_OK(mf_buf_append(&b, "1234", 4));
    mf_res r = mf_buf_append(&b, "56789", 5);
    assert_int_equal(r.err, MF_ERR_PROTO_TOO_LARGE);
    /* a refused append leaves the buffer as it was */
    assert_int_equal(b.len, 4);
    assert_string_equal(mf_buf_cstr(&b), "1234");
    mf_buf_cleanup(&b);
}

static void test_mf_buf_printf_grows_ok(void **state)
{
    (void)state;
    struct mf_buf b;
    mf_buf_init(&b, 4096, MF_BUF_SECRET);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(mf_buf_printf(&b, "%02d", i));
    }
    assert_int_equal(b.len, 200);
    assert_memory_equal(b.data + 198, "99", 2);
    mf_buf_consume(&b, 190);
    assert_string_equal(mf_buf_cstr(&b), "9596979899");
    mf_buf_cleanup(&b);
    assert_null(b.data);
    mf_buf_cleanup(&b); /* twice is harmless */
}

static void test_mf_cur_reads_truncated_refused(void **state)
{
    (void)state;
    const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05};
    struct mf_cur c;
    mf_cur_init(&c, data, sizeof(data));
    uint32_t v32 = 0;
    ASSERT_OK(mf_cur_u32be(&c, &v32));
    assert_int_equal(v32, 0x01020304);
    uint16_t v16 = 0;
    ASSERT_ERR(mf_cur_u16be(&c, &v16), MF_ERR_PROTO_TRUNCATED);
    assert_int_equal(mf_cur_remaining(&c), 1); /* a failed read does not move */
    uint8_t v8 = 0;
    ASSERT_OK(mf_cur_u8(&c, &v8));
    assert_int_equal(v8, 5);
    ASSERT_ERR(mf_cur_u8(&c, &v8), MF_ERR_PROTO_TRUNCATED);
}

static void test_mf_cur_varint_overlong_refused(void **state)
{
    (void)state;
    const uint8_t ok[] = {0xac, 0x02};
    const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    const uint8_t cut[] = {0x80, 0x80};
    struct mf_cur c;
    uint64_t v = 0;
    mf_cur_init(&c, ok, sizeof(ok));
    ASSERT_OK(mf_cur_varint(&c, &v));
    assert_int_equal(v, 300);
    mf_cur_init(&c, overlong, sizeof(overlong));
    assert_false(mf_ok(mf_cur_varint(&c, &v)));
    assert_int_equal(c.off, 0);
    mf_cur_init(&c, cut, sizeof(cut));
    ASSERT_ERR(mf_cur_varint(&c, &v), MF_ERR_PROTO_TRUNCATED);
}

static mf_res raise_detail(void)
{
    MF_BAIL_MSG(MF_ERR_ID_DOT_SEGMENT, "segment %d is '..'", 2);
}

static void test_mf_err_detail_recorded(void **state)
{
    (void)state;
    mf_res r = raise_detail();
    assert_int_equal(r.err, MF_ERR_ID_DOT_SEGMENT);
    assert_int_equal(mf_err_category(r.err), MF_CAT_PROTO);
    assert_string_equal(mf_err_detail(), "segment 2 is '..'");
    char line[256];
    mf_err_format(r, line, sizeof(line));
    assert_non_null(strstr(line, "'.' or '..'"));
    assert_non_null(strstr(line, "segment 2"));
    assert_string_equal(mf_err_name(r.err), "ID_DOT_SEGMENT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_buf_append_at_cap_ok),
        cmocka_unit_test(test_mf_buf_append_cap_plus_one_refused),
        cmocka_unit_test(test_mf_buf_printf_grows_ok),
        cmocka_unit_test(test_mf_cur_reads_truncated_refused),
        cmocka_unit_test(test_mf_cur_varint_overlong_refused),
        cmocka_unit_test(test_mf_err_detail_recorded),
    };
    return cmocka_run_group_tests_name("mf_buf", tests, NULL, NULL);
}
