/* Host unit tests of depin_bridge.c. Prints "N passed, 0 failed"; exits non-zero on a failure.
 * Built by the Makefile with -DDEPIN_MAX_PAYLOAD=1016 -DDEPIN_RING_SLOTS=4. The shared vectors
 * (../vectors.json) are checked through bridge_encode by tests/test_bridge_c.py. */
#include "depin_bridge.h"

#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (cond) {                                                                              \
            passed++;                                                                            \
        } else {                                                                                 \
            failed++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
        }                                                                                        \
    } while (0)

static size_t unhex(const char *hex, uint8_t *out) {
    size_t n = 0;
    while (hex[0] && hex[1]) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static int same_hex(const uint8_t *data, size_t n, const char *hex) {
    uint8_t want[2048];
    size_t m = unhex(hex, want);
    return m == n && memcmp(data, want, n) == 0;
}

/* ---- CRC, COBS ---------------------------------------------------------------------------- */

static void test_crc(void) {
    const uint8_t *check = (const uint8_t *)"123456789";
    uint8_t body[64];
    size_t n = unhex("01010700a3000201f94de0021a6553f100", body);
    CHECK(depin_crc32(0, check, 9) == 0xCBF43926u);
    CHECK(depin_crc32(0, check, 0) == 0);
    CHECK(depin_crc32(depin_crc32(0, check, 4), check + 4, 5) == 0xCBF43926u); /* chunked */
    CHECK(depin_crc32(0, body, n) == 0xE1001940u);
}

static void test_cobs(void) {
    /* tests/vectors/sensors.json "cobs" (cmcqueen/cobs-python) */
    static const char *pairs[][2] = {{"", "01"},
                                     {"31", "0231"},
                                     {"00", "0101"},
                                     {"0000", "010101"},
                                     {"31323334350036373839", "0631323334350536373839"},
                                     {"0031323334350036373839", "010631323334350536373839"}};
    static const char *errors[] = {"00", "05313233", "053132333400", "0531320034"};
    uint8_t in[1100], out[1100], back[1100];
    size_t i, n, m, k, len;
    for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        n = unhex(pairs[i][0], in);
        CHECK(depin_cobs_encode(in, n, out, sizeof out, &m) == DEPIN_OK);
        CHECK(same_hex(out, m, pairs[i][1]));
        CHECK(depin_cobs_decode(out, m, back, sizeof back, &k) == DEPIN_OK);
        CHECK(k == n && memcmp(back, in, n) == 0);
    }
    for (i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        n = unhex(errors[i], in);
        CHECK(depin_cobs_decode(in, n, out, sizeof out, &m) == DEPIN_ERR_COBS);
    }
    /* Block boundaries: runs of 253..256 and 508 non-zero bytes, with and without a zero. */
    for (len = 250; len <= 520; len++) {
        size_t z;
        for (z = 0; z < 3; z++) {
            for (i = 0; i < len; i++) in[i] = (uint8_t)(1 + i % 255);
            if (z == 1) in[len / 2] = 0;
            if (z == 2) in[len - 1] = 0;
            CHECK(depin_cobs_encode(in, len, out, sizeof out, &m) == DEPIN_OK);
            CHECK(m <= len + len / 254 + 1);
            CHECK(memchr(out, 0, m) == NULL);
            memcpy(back, out, m); /* in-place decode */
            CHECK(depin_cobs_decode(back, m, back, m, &k) == DEPIN_OK);
            CHECK(k == len && memcmp(back, in, len) == 0);
        }
    }
    /* 254 non-zero bytes: one full block, no trailing code byte (as cmcqueen/cobs-python). */
    for (i = 0; i < 254; i++) in[i] = (uint8_t)(i + 1);
    CHECK(depin_cobs_encode(in, 254, out, sizeof out, &m) == DEPIN_OK && m == 255 && out[0] == 0xFF);
    CHECK(depin_cobs_encode(in, 254, out, 254, &m) == DEPIN_ERR_SPACE);
    CHECK(depin_cobs_encode(in, 0, out, 0, &m) == DEPIN_ERR_SPACE);
    n = unhex("0031323334350036373839", in);
    CHECK(depin_cobs_decode((const uint8_t *)"\x06\x31\x32\x33\x34\x35\x05\x36\x37\x38\x39", 11, out,
                            5, &m) == DEPIN_ERR_SPACE);
    (void)n;
}

/* ---- CBOR ------------------------------------------------------------------------------------ */

#define CBOR_IS(stmt, hex)                                                                       \
    do {                                                                                         \
        uint8_t buf_[32];                                                                        \
        depin_cbor c_;                                                                           \
        depin_cbor_init(&c_, buf_, sizeof buf_);                                                 \
        { depin_cbor *c = &c_; stmt; }                                                           \
        CHECK(c_.err == DEPIN_OK && same_hex(buf_, c_.len, hex));                                \
    } while (0)

static void test_cbor(void) {
    volatile double zero = 0.0;
    CBOR_IS(depin_cbor_uint(c, 0), "00");
    CBOR_IS(depin_cbor_uint(c, 23), "17");
    CBOR_IS(depin_cbor_uint(c, 24), "1818");
    CBOR_IS(depin_cbor_uint(c, 255), "18ff");
    CBOR_IS(depin_cbor_uint(c, 256), "190100");
    CBOR_IS(depin_cbor_uint(c, 65535), "19ffff");
    CBOR_IS(depin_cbor_uint(c, 65536), "1a00010000");
    CBOR_IS(depin_cbor_uint(c, 1700000000), "1a6553f100");
    CBOR_IS(depin_cbor_uint(c, 4294967296u), "1b0000000100000000");
    CBOR_IS(depin_cbor_int(c, -1), "20");
    CBOR_IS(depin_cbor_int(c, -24), "37");
    CBOR_IS(depin_cbor_int(c, -25), "3818");
    CBOR_IS(depin_cbor_int(c, -40), "3827");
    CBOR_IS(depin_cbor_int(c, INT64_MIN), "3b7fffffffffffffff");
    CBOR_IS(depin_cbor_double(c, 23.5), "f94de0");
    CBOR_IS(depin_cbor_float(c, 23.5f), "f94de0");
    CBOR_IS(depin_cbor_double(c, 0.0), "f90000");
    CBOR_IS(depin_cbor_double(c, -0.0), "f98000");
    CBOR_IS(depin_cbor_double(c, 1.0), "f93c00");
    CBOR_IS(depin_cbor_double(c, 65504.0), "f97bff");
    CBOR_IS(depin_cbor_double(c, 65520.0), "fa477ff000");
    CBOR_IS(depin_cbor_double(c, 100000.0), "fa47c35000");
    CBOR_IS(depin_cbor_double(c, 5.960464477539063e-08), "f90001"); /* float16 subnormal */
    CBOR_IS(depin_cbor_double(c, 6.103515625e-05), "f90400");       /* smallest normal */
    CBOR_IS(depin_cbor_double(c, 0.1), "fb3fb999999999999a");
    CBOR_IS(depin_cbor_double(c, 3.14159), "fb400921f9f01b866e");
    CBOR_IS(depin_cbor_double(c, 1e300), "fb7e37e43c8800759c");
    CBOR_IS(depin_cbor_double(c, 1.0 / zero), "f97c00");
    CBOR_IS(depin_cbor_double(c, -1.0 / zero), "f9fc00");
    CBOR_IS(depin_cbor_double(c, zero / zero), "f97e00");
    CBOR_IS(depin_cbor_bool(c, 1), "f5");
    CBOR_IS(depin_cbor_bool(c, 0), "f4");
    CBOR_IS(depin_cbor_null(c), "f6");
    CBOR_IS(depin_cbor_cstr(c, "ok"), "626f6b");
    CBOR_IS(depin_cbor_bytes(c, (const uint8_t *)"\x00\x01\xff", 3), "430001ff");
    CBOR_IS((depin_cbor_array(c, 2), depin_cbor_uint(c, 1), depin_cbor_cstr(c, "")), "820160");
    CBOR_IS((depin_cbor_map(c, 3), depin_cbor_uint(c, 0), depin_cbor_uint(c, 2), depin_cbor_uint(c, 1),
             depin_cbor_double(c, 23.5), depin_cbor_uint(c, 2), depin_cbor_uint(c, 1700000000)),
            "a3000201f94de0021a6553f100");
    {
        uint8_t small[3];
        depin_cbor c;
        depin_cbor_init(&c, small, sizeof small);
        size_t len;
        depin_cbor_uint(&c, 1);
        depin_cbor_cstr(&c, "long");
        len = c.len;
        depin_cbor_uint(&c, 2); /* sticky: nothing more is written */
        CHECK(c.err == DEPIN_ERR_SPACE && c.len == len && len <= sizeof small);
    }
}

/* ---- frames and acks ---------------------------------------------------------------------- */

static void test_frames(void) {
    uint8_t payload[64], wire[DEPIN_MAX_WIRE];
    size_t n = unhex("a3000201f94de0021a6553f100", payload), m;
    depin_frame f;
    depin_ack a;
    CHECK(depin_frame_encode(DEPIN_T_READING, 7, payload, n, wire, sizeof wire, &m) == DEPIN_OK);
    CHECK(same_hex(wire, m, "0401010702a30b0201f94de0021a6553f103401902e100")); /* worked example */
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_OK);
    CHECK(f.type == DEPIN_T_READING && f.seq == 7 && f.payload_len == n);
    CHECK(memcmp(f.payload, payload, n) == 0);
    CHECK(depin_frame_encode(DEPIN_T_READING, 7, payload, n, wire, 10, &m) == DEPIN_ERR_SPACE);
    CHECK(depin_frame_encode(DEPIN_T_READING, 7, payload, DEPIN_MAX_PAYLOAD + 1, wire, sizeof wire,
                             &m) == DEPIN_ERR_SPACE);

    m = unhex("0401010702a30b0201f94de0021a6553f103401902e200", wire); /* CRC byte changed */
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_ERR_CRC);
    m = unhex("0531323300", wire);
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_ERR_COBS);
    m = unhex("021100", wire);
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_ERR_LENGTH);

    /* ack of reading 7 of boot 0x1234abcd, as drivers/bridge.py encode_ack writes it */
    m = unhex("0401030702a10a1a1234abcd68e6879f00", wire);
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_OK);
    CHECK(depin_ack_parse(&f, &a) == DEPIN_OK);
    CHECK(a.seq == 7 && a.has_boot && a.boot == 0x1234ABCDu && a.acked_type == DEPIN_T_READING);
    CHECK(a.request == 0);
    {
        depin_ack b = {7, 1, 0x1234ABCDu, DEPIN_T_READING, 0};
        uint8_t again[64];
        size_t k;
        CHECK(depin_ack_encode(&b, again, sizeof again, &k) == DEPIN_OK);
        CHECK(same_hex(again, k, "0401030702a10a1a1234abcd68e6879f00"));
    }
    {
        depin_ack b = {0, 0, 0, DEPIN_T_READING, DEPIN_REQUEST_HELLO};
        uint8_t req[64];
        size_t k;
        depin_ack back;
        CHECK(depin_ack_encode(&b, req, sizeof req, &k) == DEPIN_OK);
        CHECK(depin_frame_decode(req, k, &f) == DEPIN_OK && depin_ack_parse(&f, &back) == DEPIN_OK);
        CHECK(!back.has_boot && back.request == DEPIN_REQUEST_HELLO);
    }
    m = unhex("0401010702a30b0201f94de0021a6553f103401902e100", wire);
    CHECK(depin_frame_decode(wire, m, &f) == DEPIN_OK && depin_ack_parse(&f, &a) == DEPIN_ERR_TYPE);
    CHECK(strcmp(depin_status_name(DEPIN_ERR_CRC), "crc") == 0);
}

/* ---- the link ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t buf[8192];
    size_t len;
} sink;

static void sink_write(void *ctx, const uint8_t *data, size_t len) {
    sink *s = (sink *)ctx;
    if (s->len + len <= sizeof s->buf) {
        memcpy(s->buf + s->len, data, len);
        s->len += len;
    }
}

/* Split what the device wrote into frames; returns how many of `type`, last one's seq. */
static int count_frames(sink *s, uint8_t type, uint16_t *last_seq, int *bad) {
    size_t start = 0, i;
    int count = 0;
    for (i = 0; i < s->len; i++) {
        if (s->buf[i] != 0) continue;
        if (i > start) {
            uint8_t tmp[DEPIN_MAX_WIRE];
            depin_frame f;
            memcpy(tmp, s->buf + start, i - start);
            if (depin_frame_decode(tmp, i - start, &f) != DEPIN_OK) {
                if (bad) (*bad)++;
            } else if (f.type == type) {
                count++;
                if (last_seq) *last_seq = f.seq;
            }
        }
        start = i + 1;
    }
    return count;
}

/* As the gateway does: a 0x00 before every frame it sends, so line noise costs one frame. */
static void gateway_ack(depin_bridge *b, uint16_t seq, uint32_t boot, uint8_t type, uint32_t now) {
    depin_ack a;
    uint8_t wire[64];
    size_t n;
    depin_bridge_rx(b, (const uint8_t *)"", 1, now);
    a.seq = seq;
    a.has_boot = 1;
    a.boot = boot;
    a.acked_type = type;
    a.request = 0;
    if (depin_ack_encode(&a, wire, sizeof wire, &n) == DEPIN_OK) depin_bridge_rx(b, wire, n, now);
}

static const depin_sensor sensors[] = {{"pm2_5", "ug/m3"}, {"humidity", "%RH"}, {"temperature", "Cel"}};

static void setup(depin_bridge *b, sink *s, uint32_t boot) {
    depin_config cfg;
    memset(&cfg, 0, sizeof cfg);
    memset(s, 0, sizeof *s);
    cfg.write = sink_write;
    cfg.write_ctx = s;
    cfg.device_id = "c-test-01";
    cfg.firmware = "0.1.0";
    cfg.sensors = sensors;
    cfg.sensor_count = 3;
    cfg.boot_nonce = boot;
    cfg.resend_ms = 500;
    cfg.hello_ms = 200;
    CHECK(depin_bridge_init(b, &cfg) == DEPIN_OK);
}

static void test_handshake_and_acks(void) {
    static depin_bridge b;
    static sink s;
    uint16_t seq = 0xEEEE;
    int bad = 0;
    setup(&b, &s, 0xB007u);
    CHECK(depin_bridge_start(&b, 1000) == DEPIN_OK);
    CHECK(s.buf[0] == 0x00); /* lone delimiter first */
    CHECK(count_frames(&s, DEPIN_T_HELLO, &seq, &bad) == 1 && seq == 0 && bad == 0);
    /* before the hello is acked, readings queue but are not sent */
    CHECK(depin_bridge_reading(&b, 2, 23.5, 1700000000u, 1010) == DEPIN_OK);
    CHECK(count_frames(&s, DEPIN_T_READING, NULL, NULL) == 0);
    CHECK(depin_bridge_log(&b, DEPIN_LOG_INFO, "dropped", 1010) == DEPIN_OK);
    CHECK(count_frames(&s, DEPIN_T_LOG, NULL, NULL) == 0);
    /* the hello is retried every hello_ms, with the current next seq */
    depin_bridge_tick(&b, 1199);
    CHECK(count_frames(&s, DEPIN_T_HELLO, NULL, NULL) == 1);
    depin_bridge_tick(&b, 1200);
    CHECK(count_frames(&s, DEPIN_T_HELLO, &seq, NULL) == 2 && seq == 1);
    /* an ack of the stale hello (seq 0) and an ack for another boot are ignored */
    gateway_ack(&b, 0, 0xB007u, DEPIN_T_HELLO, 1210);
    gateway_ack(&b, 1, 0xB008u, DEPIN_T_HELLO, 1210);
    CHECK(!b.identified);
    gateway_ack(&b, 1, 0xB007u, DEPIN_T_HELLO, 1220);
    CHECK(b.identified);
    CHECK(count_frames(&s, DEPIN_T_READING, &seq, NULL) == 1 && seq == 0);
    CHECK(depin_bridge_unacked(&b) == 1);
    gateway_ack(&b, 0, 0xB007u, DEPIN_T_READING, 1230);
    CHECK(depin_bridge_unacked(&b) == 0 && b.count == 0 && b.stats.acked == 1);
    gateway_ack(&b, 0, 0xB007u, DEPIN_T_READING, 1231); /* duplicate ack: harmless */
    CHECK(b.stats.acked == 1);
    CHECK(depin_bridge_log(&b, DEPIN_LOG_WARN, "hi", 1240) == DEPIN_OK);
    CHECK(count_frames(&s, DEPIN_T_LOG, NULL, NULL) == 1);
}

static void test_ring_full_and_selective_acks(void) {
    static depin_bridge b;
    static sink s;
    int i;
    setup(&b, &s, 7);
    depin_bridge_start(&b, 0);
    gateway_ack(&b, 0, 7, DEPIN_T_HELLO, 1);
    for (i = 0; i < DEPIN_RING_SLOTS; i++) CHECK(depin_bridge_reading(&b, 0, i, 0, 10) == DEPIN_OK);
    /* full: the new reading is refused, no seq is used, nothing is overwritten */
    CHECK(depin_bridge_reading(&b, 0, 99, 0, 11) == DEPIN_ERR_FULL);
    CHECK(b.stats.rejected == 1 && b.next_seq == DEPIN_RING_SLOTS);
    /* an ack of a middle slot frees nothing (FIFO), an ack of the head frees both */
    gateway_ack(&b, 1, 7, DEPIN_T_READING, 20);
    CHECK(depin_bridge_unacked(&b) == DEPIN_RING_SLOTS - 1 && b.count == DEPIN_RING_SLOTS);
    CHECK(depin_bridge_reading(&b, 0, 99, 0, 21) == DEPIN_ERR_FULL);
    gateway_ack(&b, 0, 7, DEPIN_T_READING, 22);
    CHECK(b.count == DEPIN_RING_SLOTS - 2);
    CHECK(depin_bridge_reading(&b, 0, 100, 0, 23) == DEPIN_OK);
}

static void test_timeout_resend(void) {
    static depin_bridge b;
    static sink s;
    uint16_t seq;
    setup(&b, &s, 9);
    depin_bridge_start(&b, 0xFFFFFF00u); /* the ms tick wraps during this test */
    gateway_ack(&b, 0, 9, DEPIN_T_HELLO, 0xFFFFFF00u);
    depin_bridge_reading(&b, 1, 50.0, 0, 0xFFFFFF10u);
    depin_bridge_reading(&b, 1, 51.0, 0, 0xFFFFFF20u);
    CHECK(count_frames(&s, DEPIN_T_READING, NULL, NULL) == 2);
    depin_bridge_tick(&b, 0xFFFFFF10u + 499u);
    CHECK(count_frames(&s, DEPIN_T_HELLO, NULL, NULL) == 1);
    /* no ack within resend_ms (across the 2^32 wrap): hello first, readings wait for its ack */
    depin_bridge_tick(&b, 0x00000104u);
    CHECK(!b.identified && b.stats.timeouts == 1);
    CHECK(count_frames(&s, DEPIN_T_HELLO, &seq, NULL) == 2 && seq == 2);
    CHECK(count_frames(&s, DEPIN_T_READING, NULL, NULL) == 2);
    gateway_ack(&b, 2, 9, DEPIN_T_HELLO, 10);
    CHECK(count_frames(&s, DEPIN_T_READING, NULL, NULL) == 4 && b.stats.resent == 2);
    /* a hello request from the gateway (it restarted) starts a new handshake */
    {
        depin_ack req = {0, 0, 0, DEPIN_T_READING, DEPIN_REQUEST_HELLO};
        uint8_t wire[32];
        size_t n;
        depin_ack_encode(&req, wire, sizeof wire, &n);
        depin_bridge_rx(&b, wire, n, 20);
        CHECK(!b.identified && count_frames(&s, DEPIN_T_HELLO, NULL, NULL) == 3);
        depin_bridge_rx(&b, wire, n, 21); /* already waiting: no hello storm */
        CHECK(count_frames(&s, DEPIN_T_HELLO, NULL, NULL) == 3);
    }
}

static void test_seq_wrap(void) {
    static depin_bridge b;
    static sink s;
    uint32_t i;
    uint8_t tmp[DEPIN_MAX_WIRE];
    depin_frame f;
    size_t start;
    setup(&b, &s, 3);
    depin_bridge_start(&b, 0);
    gateway_ack(&b, 0, 3, DEPIN_T_HELLO, 0);
    for (i = 0; i < 65537u; i++) {
        s.len = 0;
        if (depin_bridge_reading(&b, 0, 1.0, 0, i) != DEPIN_OK) break;
        gateway_ack(&b, (uint16_t)i, 3, DEPIN_T_READING, i);
    }
    CHECK(i == 65537u && b.next_seq == 65537u && b.count == 0);
    s.len = 0;
    depin_bridge_start(&b, 70000); /* the hello now says seq 1 with seq_hi (key 4) = 1 */
    for (start = 1; start < s.len && s.buf[start] != 0; start++) continue;
    memcpy(tmp, s.buf + 1, start - 1);
    CHECK(depin_frame_decode(tmp, start - 1, &f) == DEPIN_OK && f.type == DEPIN_T_HELLO && f.seq == 1);
    CHECK(f.payload_len > 6 && memcmp(f.payload + f.payload_len - 4, "\x04\x01\x05\x04", 4) == 0);
}

static void test_rx_garbage(void) {
    static depin_bridge b;
    static sink s;
    uint32_t x = 12345, i;
    uint8_t junk[4096];
    setup(&b, &s, 5);
    depin_bridge_start(&b, 0);
    for (i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    for (i = 0; i < 16; i++) depin_bridge_rx(&b, junk + i * 256, 256, i);
    CHECK(!b.identified && b.stats.rx_bad > 0);
    gateway_ack(&b, 0, 5, DEPIN_T_HELLO, 100); /* still works after garbage */
    CHECK(b.identified);
}

int main(void) {
    test_crc();
    test_cobs();
    test_cbor();
    test_frames();
    test_handshake_and_acks();
    test_ring_full_and_selective_acks();
    test_timeout_resend();
    test_seq_wrap();
    test_rx_garbage();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
