/* depin_bridge.c - see depin_bridge.h and ../PROTOCOL.md. C99, no heap, no clock. */
#include "depin_bridge.h"

#include <string.h>

/* Payload keys (PROTOCOL.md section 4). */
enum { R_SENSOR = 0, R_VALUE = 1, R_TIME = 2 };
enum { H_DEVICE = 0, H_FIRMWARE = 1, H_SENSORS = 2, H_BOOT = 3, H_SEQ_HI = 4, H_RING = 5 };
enum { A_BOOT = 0, A_TYPE = 1, A_REQUEST = 2 };
enum { L_LEVEL = 0, L_MESSAGE = 1 };
#define CBOR_MAX_DEPTH 4

const char *depin_status_name(int status) {
    switch (status) {
    case DEPIN_OK: return "ok";
    case DEPIN_ERR_SPACE: return "space";
    case DEPIN_ERR_COBS: return "cobs";
    case DEPIN_ERR_LENGTH: return "length";
    case DEPIN_ERR_CRC: return "crc";
    case DEPIN_ERR_VERSION: return "version";
    case DEPIN_ERR_TYPE: return "type";
    case DEPIN_ERR_CBOR: return "cbor";
    case DEPIN_ERR_PAYLOAD: return "payload";
    case DEPIN_ERR_FULL: return "full";
    case DEPIN_ERR_ARG: return "arg";
    default: return "unknown";
    }
}

/* ---- CRC-32: reflected polynomial 0xEDB88320, one 16-entry table (64 bytes of flash) --------- */

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t depin_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    size_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

/* ---- COBS --------------------------------------------------------------------------------- */

int depin_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
    size_t read = 0, write = 1, code_at = 0;
    uint8_t code = 1;
    if (!out || (!in && n) || !out_len) return DEPIN_ERR_ARG;
    if (cap < 1) return DEPIN_ERR_SPACE;
    while (read < n) {
        uint8_t byte = in[read++];
        if (byte != 0) {
            if (write >= cap) return DEPIN_ERR_SPACE;
            out[write++] = byte;
            code++;
            if (code != 0xFF || read == n) continue; /* a final full block needs no code after */
        }
        out[code_at] = code; /* close the block: a zero, or 254 data bytes (code 0xFF) */
        if (write >= cap) return DEPIN_ERR_SPACE;
        code_at = write++;
        code = 1;
    }
    out[code_at] = code;
    *out_len = write;
    return DEPIN_OK;
}

int depin_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
    size_t read = 0, write = 0;
    if (!out || (!in && n) || !out_len) return DEPIN_ERR_ARG;
    while (read < n) {
        uint8_t code = in[read];
        size_t i;
        if (code == 0) return DEPIN_ERR_COBS;
        if (read + code > n) return DEPIN_ERR_COBS;
        read++;
        for (i = 1; i < code; i++) {
            uint8_t byte = in[read++];
            if (byte == 0) return DEPIN_ERR_COBS;
            if (write >= cap) return DEPIN_ERR_SPACE;
            out[write++] = byte;
        }
        if (code != 0xFF && read < n) {
            if (write >= cap) return DEPIN_ERR_SPACE;
            out[write++] = 0;
        }
    }
    *out_len = write;
    return DEPIN_OK;
}

/* ---- CBOR encoder -------------------------------------------------------------------------- */

void depin_cbor_init(depin_cbor *c, uint8_t *buf, size_t cap) {
    c->buf = buf;
    c->cap = cap;
    c->len = 0;
    c->err = DEPIN_OK;
}

static void cbor_put(depin_cbor *c, const uint8_t *data, size_t n) {
    if (c->err != DEPIN_OK) return;
    if (n > c->cap - c->len) {
        c->err = DEPIN_ERR_SPACE;
        return;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

static void cbor_be(depin_cbor *c, uint8_t first, uint64_t v, unsigned bytes) {
    uint8_t tmp[9];
    unsigned i;
    tmp[0] = first;
    for (i = 0; i < bytes; i++) tmp[bytes - i] = (uint8_t)(v >> (8 * i));
    cbor_put(c, tmp, bytes + 1);
}

static void cbor_head(depin_cbor *c, uint8_t major, uint64_t v) {
    uint8_t mt = (uint8_t)(major << 5);
    if (v < 24) cbor_be(c, (uint8_t)(mt | v), 0, 0);
    else if (v <= 0xFFu) cbor_be(c, (uint8_t)(mt | 24), v, 1);
    else if (v <= 0xFFFFu) cbor_be(c, (uint8_t)(mt | 25), v, 2);
    else if (v <= 0xFFFFFFFFu) cbor_be(c, (uint8_t)(mt | 26), v, 4);
    else cbor_be(c, (uint8_t)(mt | 27), v, 8);
}

void depin_cbor_uint(depin_cbor *c, uint64_t v) { cbor_head(c, 0, v); }

void depin_cbor_int(depin_cbor *c, int64_t v) {
    if (v >= 0) cbor_head(c, 0, (uint64_t)v);
    else cbor_head(c, 1, (uint64_t)(-(v + 1))); /* -1 - n, no overflow at INT64_MIN */
}

/* float32 bits -> float16 bits if the value is exactly representable; returns 1 on success. */
static int half_from_single(uint32_t bits, uint16_t *half) {
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t exp = (bits >> 23) & 0xFFu, mant = bits & 0x7FFFFFu;
    int e;
    if (exp == 0xFF) { /* inf, or NaN (written as the canonical quiet NaN 0x7e00) */
        *half = mant ? 0x7E00u : (uint16_t)(sign | 0x7C00u);
        return 1;
    }
    if (exp == 0 && mant == 0) {
        *half = sign;
        return 1;
    }
    if (exp == 0) return 0; /* float32 subnormals are far below float16's range */
    e = (int)exp - 127;
    if (e >= -14 && e <= 15) {
        if (mant & 0x1FFFu) return 0;
        *half = (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)(mant >> 13));
        return 1;
    }
    if (e >= -24 && e < -14) { /* float16 subnormal: m * 2^-24 */
        uint32_t sig = mant | 0x800000u;
        unsigned shift = (unsigned)(-e - 1);
        if (sig & ((1u << shift) - 1u)) return 0;
        *half = (uint16_t)(sign | (uint16_t)(sig >> shift));
        return 1;
    }
    return 0;
}

void depin_cbor_float(depin_cbor *c, float v) {
    uint32_t bits;
    uint16_t half;
    memcpy(&bits, &v, sizeof bits);
    if (half_from_single(bits, &half)) cbor_be(c, 0xF9, half, 2);
    else cbor_be(c, 0xFA, bits, 4);
}

void depin_cbor_double(depin_cbor *c, double v) {
    uint64_t bits;
    if (v != v || v - v != 0.0) { /* NaN or infinity: float16 holds both */
        depin_cbor_float(c, (float)v);
        return;
    }
    if (v <= 3.4028234663852886e38 && v >= -3.4028234663852886e38) {
        float f = (float)v;
        if ((double)f == v) {
            depin_cbor_float(c, f);
            return;
        }
    }
    memcpy(&bits, &v, sizeof bits);
    cbor_be(c, 0xFB, bits, 8);
}

void depin_cbor_bool(depin_cbor *c, int v) { cbor_be(c, v ? 0xF5 : 0xF4, 0, 0); }
void depin_cbor_null(depin_cbor *c) { cbor_be(c, 0xF6, 0, 0); }

void depin_cbor_text(depin_cbor *c, const char *s, size_t n) {
    cbor_head(c, 3, n);
    cbor_put(c, (const uint8_t *)s, n);
}

void depin_cbor_cstr(depin_cbor *c, const char *s) { depin_cbor_text(c, s, strlen(s)); }

void depin_cbor_bytes(depin_cbor *c, const uint8_t *b, size_t n) {
    cbor_head(c, 2, n);
    cbor_put(c, b, n);
}

void depin_cbor_array(depin_cbor *c, size_t items) { cbor_head(c, 4, items); }
void depin_cbor_map(depin_cbor *c, size_t pairs) { cbor_head(c, 5, pairs); }

/* ---- CBOR reader (just enough for the ack map) --------------------------------------------- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} cbor_in;

/* One item head; rejects reserved and indefinite lengths. */
static int cbor_read_head(cbor_in *in, uint8_t *major, uint8_t *info, uint64_t *v) {
    unsigned n, i;
    if (in->p >= in->end) return DEPIN_ERR_CBOR;
    *major = (uint8_t)(*in->p >> 5);
    *info = (uint8_t)(*in->p & 0x1F);
    in->p++;
    if (*info < 24) {
        *v = *info;
        return DEPIN_OK;
    }
    if (*info > 27) return DEPIN_ERR_CBOR;
    n = 1u << (*info - 24);
    if ((size_t)(in->end - in->p) < n) return DEPIN_ERR_CBOR;
    *v = 0;
    for (i = 0; i < n; i++) *v = (*v << 8) | *in->p++;
    return DEPIN_OK;
}

/* Skip one item of the kinds PROTOCOL.md section 4 allows (no tags, no simple values but
 * false/true/null, no indefinite lengths). */
static int cbor_skip(cbor_in *in, int depth) {
    uint8_t major, info;
    uint64_t v, i;
    int rc = cbor_read_head(in, &major, &info, &v);
    if (rc != DEPIN_OK) return rc;
    switch (major) {
    case 0:
    case 1: return DEPIN_OK;
    case 2:
    case 3:
        if ((uint64_t)(in->end - in->p) < v) return DEPIN_ERR_CBOR;
        in->p += v;
        return DEPIN_OK;
    case 4:
    case 5:
        if (depth >= CBOR_MAX_DEPTH) return DEPIN_ERR_CBOR;
        if (major == 5) {
            for (i = 0; i < v; i++) {
                uint8_t kmajor, kinfo;
                uint64_t key;
                if (cbor_read_head(in, &kmajor, &kinfo, &key) != DEPIN_OK || kmajor != 0)
                    return DEPIN_ERR_CBOR; /* map keys are unsigned integers */
                if ((rc = cbor_skip(in, depth + 1)) != DEPIN_OK) return rc;
            }
        } else {
            for (i = 0; i < v; i++)
                if ((rc = cbor_skip(in, depth + 1)) != DEPIN_OK) return rc;
        }
        return DEPIN_OK;
    case 7: return (info >= 20 && info <= 22) || (info >= 25 && info <= 27) ? DEPIN_OK : DEPIN_ERR_CBOR;
    default: return DEPIN_ERR_CBOR; /* tags */
    }
}

/* ---- frames -------------------------------------------------------------------------------- */

int depin_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t cap, size_t *out_len) {
    uint8_t frame[DEPIN_MAX_FRAME];
    size_t n = DEPIN_HEADER + payload_len, wire_len;
    uint32_t crc;
    int rc;
    if (!out || !out_len || (!payload && payload_len)) return DEPIN_ERR_ARG;
    if (payload_len > DEPIN_MAX_PAYLOAD) return DEPIN_ERR_SPACE;
    frame[0] = DEPIN_VERSION;
    frame[1] = type;
    frame[2] = (uint8_t)(seq & 0xFF);
    frame[3] = (uint8_t)(seq >> 8);
    if (payload_len) memcpy(frame + DEPIN_HEADER, payload, payload_len);
    crc = depin_crc32(0, frame, n);
    frame[n++] = (uint8_t)crc;
    frame[n++] = (uint8_t)(crc >> 8);
    frame[n++] = (uint8_t)(crc >> 16);
    frame[n++] = (uint8_t)(crc >> 24);
    if (cap < 1) return DEPIN_ERR_SPACE;
    rc = depin_cobs_encode(frame, n, out, cap - 1, &wire_len);
    if (rc != DEPIN_OK) return rc;
    out[wire_len++] = 0;
    *out_len = wire_len;
    return DEPIN_OK;
}

int depin_frame_decode(uint8_t *buf, size_t n, depin_frame *f) {
    size_t len;
    uint32_t carried;
    int rc;
    if (!buf || !f) return DEPIN_ERR_ARG;
    if (n && buf[n - 1] == 0) n--;
    rc = depin_cobs_decode(buf, n, buf, n, &len);
    if (rc != DEPIN_OK) return rc;
    if (len < DEPIN_MIN_FRAME || len > DEPIN_MAX_FRAME) return DEPIN_ERR_LENGTH;
    carried = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 | (uint32_t)buf[len - 2] << 16 |
              (uint32_t)buf[len - 1] << 24;
    if (depin_crc32(0, buf, len - DEPIN_CRC) != carried) return DEPIN_ERR_CRC;
    if (buf[0] != DEPIN_VERSION) return DEPIN_ERR_VERSION;
    if (buf[1] < DEPIN_T_READING || buf[1] > DEPIN_T_LOG) return DEPIN_ERR_TYPE;
    f->type = buf[1];
    f->seq = (uint16_t)(buf[2] | buf[3] << 8);
    f->payload = buf + DEPIN_HEADER;
    f->payload_len = len - DEPIN_HEADER - DEPIN_CRC;
    return DEPIN_OK;
}

/* ---- ack ------------------------------------------------------------------------------------ */

int depin_ack_parse(const depin_frame *f, depin_ack *a) {
    cbor_in in;
    uint8_t major, info, seen = 0, bad = 0;
    uint64_t pairs, i, key, v;
    int rc;
    if (!f || !a) return DEPIN_ERR_ARG;
    if (f->type != DEPIN_T_ACK) return DEPIN_ERR_TYPE;
    memset(a, 0, sizeof *a);
    a->seq = f->seq;
    a->acked_type = DEPIN_T_READING;
    in.p = f->payload;
    in.end = f->payload + f->payload_len;
    if (cbor_read_head(&in, &major, &info, &pairs) != DEPIN_OK) return DEPIN_ERR_CBOR;
    if (major != 5) { /* a well-formed item that is not a map is a shape error */
        in.p = f->payload;
        if (cbor_skip(&in, 0) != DEPIN_OK || in.p != in.end) return DEPIN_ERR_CBOR;
        return DEPIN_ERR_PAYLOAD;
    }
    for (i = 0; i < pairs; i++) {
        cbor_in value;
        if (cbor_read_head(&in, &major, &info, &key) != DEPIN_OK || major != 0)
            return DEPIN_ERR_CBOR; /* map keys are unsigned integers */
        value.p = in.p;
        if ((rc = cbor_skip(&in, 1)) != DEPIN_OK) return rc;
        value.end = in.p;
        if (key > A_REQUEST) continue; /* unknown keys are ignored */
        if (seen & (1u << key)) return DEPIN_ERR_CBOR; /* duplicate key */
        seen = (uint8_t)(seen | (1u << key));
        if (cbor_read_head(&value, &major, &info, &v) != DEPIN_OK || major != 0 ||
            v > 0xFFFFFFFFu) {
            bad = 1; /* keep going: a later syntax error is reported first, as the gateway does */
            continue;
        }
        if (key == A_BOOT) {
            a->has_boot = 1;
            a->boot = (uint32_t)v;
        } else if (key == A_TYPE) {
            if (v != DEPIN_T_READING && v != DEPIN_T_HELLO) bad = 1;
            a->acked_type = (uint8_t)v;
        } else {
            a->request = (uint32_t)v;
        }
    }
    if (in.p != in.end) return DEPIN_ERR_CBOR;
    if (bad || !(seen & ((1u << A_BOOT) | (1u << A_REQUEST)))) return DEPIN_ERR_PAYLOAD;
    return DEPIN_OK;
}

int depin_ack_encode(const depin_ack *a, uint8_t *out, size_t cap, size_t *out_len) {
    uint8_t payload[24];
    depin_cbor c;
    size_t pairs;
    if (!a) return DEPIN_ERR_ARG;
    pairs = (a->has_boot ? 1u : 0u) + (a->has_boot && a->acked_type != DEPIN_T_READING ? 1u : 0u) +
            (a->request ? 1u : 0u);
    depin_cbor_init(&c, payload, sizeof payload);
    depin_cbor_map(&c, pairs);
    if (a->has_boot) {
        depin_cbor_uint(&c, A_BOOT);
        depin_cbor_uint(&c, a->boot);
        if (a->acked_type != DEPIN_T_READING) {
            depin_cbor_uint(&c, A_TYPE);
            depin_cbor_uint(&c, a->acked_type);
        }
    }
    if (a->request) {
        depin_cbor_uint(&c, A_REQUEST);
        depin_cbor_uint(&c, a->request);
    }
    if (c.err != DEPIN_OK) return c.err;
    return depin_frame_encode(DEPIN_T_ACK, a->has_boot ? a->seq : 0, payload, c.len, out, cap,
                              out_len);
}

/* ---- the link ------------------------------------------------------------------------------- */

static int elapsed(uint32_t now, uint32_t then, uint32_t interval) {
    return (uint32_t)(now - then) >= interval; /* wraps correctly at 2^32 ms */
}

static depin_slot *slot_at(depin_bridge *b, unsigned i) {
    return &b->ring[(b->head + i) % DEPIN_RING_SLOTS];
}

static void transmit(depin_bridge *b, depin_slot *s, uint32_t now) {
    if (s->tries) b->stats.resent++;
    else b->stats.sent++;
    if (s->tries < 0xFF) s->tries++;
    b->cfg.write(b->cfg.write_ctx, s->wire, s->len);
    s->state = DEPIN_SLOT_SENT;
    s->sent_ms = now;
}

static int send_hello(depin_bridge *b, uint32_t now) {
    uint8_t payload[DEPIN_MAX_PAYLOAD];
    uint8_t wire[DEPIN_MAX_WIRE];
    depin_cbor c;
    size_t wire_len, i;
    int rc;
    depin_cbor_init(&c, payload, sizeof payload);
    depin_cbor_map(&c, 6);
    depin_cbor_uint(&c, H_DEVICE);
    depin_cbor_cstr(&c, b->cfg.device_id);
    depin_cbor_uint(&c, H_FIRMWARE);
    depin_cbor_cstr(&c, b->cfg.firmware);
    depin_cbor_uint(&c, H_SENSORS);
    depin_cbor_array(&c, b->cfg.sensor_count);
    for (i = 0; i < b->cfg.sensor_count; i++) {
        depin_cbor_array(&c, 2);
        depin_cbor_cstr(&c, b->cfg.sensors[i].name);
        depin_cbor_cstr(&c, b->cfg.sensors[i].unit ? b->cfg.sensors[i].unit : "");
    }
    depin_cbor_uint(&c, H_BOOT);
    depin_cbor_uint(&c, b->cfg.boot_nonce);
    depin_cbor_uint(&c, H_SEQ_HI);
    depin_cbor_uint(&c, b->next_seq >> 16);
    depin_cbor_uint(&c, H_RING);
    depin_cbor_uint(&c, DEPIN_RING_SLOTS);
    if (c.err != DEPIN_OK) return c.err;
    rc = depin_frame_encode(DEPIN_T_HELLO, (uint16_t)b->next_seq, payload, c.len, wire,
                            sizeof wire, &wire_len);
    if (rc != DEPIN_OK) return rc;
    b->hello_pending = 1;
    b->hello_seq = (uint16_t)b->next_seq;
    b->hello_sent_ms = now;
    b->stats.hellos++;
    b->cfg.write(b->cfg.write_ctx, wire, wire_len);
    return DEPIN_OK;
}

/* Leave the identified state: readings wait until the gateway acks a fresh hello. */
static void begin_hello(depin_bridge *b, uint32_t now) {
    unsigned i;
    b->identified = 0;
    for (i = 0; i < b->count; i++) {
        depin_slot *s = slot_at(b, i);
        if (s->state == DEPIN_SLOT_SENT) s->state = DEPIN_SLOT_QUEUED;
    }
    (void)send_hello(b, now);
}

static void pop_acked(depin_bridge *b) {
    while (b->count && b->ring[b->head].state == DEPIN_SLOT_ACKED) {
        b->ring[b->head].state = DEPIN_SLOT_FREE;
        b->head = (uint8_t)((b->head + 1) % DEPIN_RING_SLOTS);
        b->count--;
    }
}

int depin_bridge_init(depin_bridge *b, const depin_config *cfg) {
    if (!b || !cfg || !cfg->write || !cfg->device_id || !cfg->firmware ||
        (cfg->sensor_count && !cfg->sensors))
        return DEPIN_ERR_ARG;
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    if (!b->cfg.resend_ms) b->cfg.resend_ms = 2000;
    if (!b->cfg.hello_ms) b->cfg.hello_ms = 1000;
    return DEPIN_OK;
}

int depin_bridge_start(depin_bridge *b, uint32_t now_ms) {
    static const uint8_t delimiter = 0;
    b->cfg.write(b->cfg.write_ctx, &delimiter, 1);
    b->identified = 0;
    return send_hello(b, now_ms);
}

int depin_bridge_enqueue(depin_bridge *b, const uint8_t *payload, size_t len, uint32_t now_ms) {
    depin_slot *s;
    size_t wire_len;
    int rc;
    if (!b) return DEPIN_ERR_ARG;
    if (b->count == DEPIN_RING_SLOTS) {
        b->stats.rejected++;
        return DEPIN_ERR_FULL;
    }
    s = slot_at(b, b->count);
    rc = depin_frame_encode(DEPIN_T_READING, (uint16_t)b->next_seq, payload, len, s->wire,
                            sizeof s->wire, &wire_len);
    if (rc != DEPIN_OK) return rc;
    s->len = (uint16_t)wire_len;
    s->seq = (uint16_t)b->next_seq;
    s->state = DEPIN_SLOT_QUEUED;
    s->tries = 0;
    s->sent_ms = now_ms;
    b->next_seq++;
    b->count++;
    if (b->identified) {
        transmit(b, s, now_ms);
        b->since_hello++;
        if (b->cfg.hello_every && b->since_hello >= b->cfg.hello_every) begin_hello(b, now_ms);
    }
    return DEPIN_OK;
}

int depin_bridge_reading(depin_bridge *b, uint16_t sensor, double value, uint32_t unix_time,
                         uint32_t now_ms) {
    uint8_t payload[24];
    depin_cbor c;
    depin_cbor_init(&c, payload, sizeof payload);
    depin_cbor_map(&c, unix_time ? 3 : 2);
    depin_cbor_uint(&c, R_SENSOR);
    depin_cbor_uint(&c, sensor);
    depin_cbor_uint(&c, R_VALUE);
    depin_cbor_double(&c, value);
    if (unix_time) {
        depin_cbor_uint(&c, R_TIME);
        depin_cbor_uint(&c, unix_time);
    }
    if (c.err != DEPIN_OK) return c.err;
    return depin_bridge_enqueue(b, payload, c.len, now_ms);
}

int depin_bridge_log(depin_bridge *b, uint8_t level, const char *message, uint32_t now_ms) {
    uint8_t payload[DEPIN_MAX_PAYLOAD];
    uint8_t wire[DEPIN_MAX_WIRE];
    depin_cbor c;
    size_t wire_len, n = strlen(message);
    int rc;
    (void)now_ms;
    if (!b->identified) return DEPIN_OK; /* best effort: never before the handshake */
    if (n > DEPIN_MAX_PAYLOAD - 8) n = DEPIN_MAX_PAYLOAD - 8; /* truncate (may split UTF-8) */
    depin_cbor_init(&c, payload, sizeof payload);
    depin_cbor_map(&c, 2);
    depin_cbor_uint(&c, L_LEVEL);
    depin_cbor_uint(&c, level);
    depin_cbor_uint(&c, L_MESSAGE);
    depin_cbor_text(&c, message, n);
    if (c.err != DEPIN_OK) return c.err;
    rc = depin_frame_encode(DEPIN_T_LOG, (uint16_t)b->next_seq, payload, c.len, wire, sizeof wire,
                            &wire_len);
    if (rc == DEPIN_OK) b->cfg.write(b->cfg.write_ctx, wire, wire_len);
    return rc;
}

static void handle_ack(depin_bridge *b, const depin_ack *a, uint32_t now) {
    unsigned i;
    if (a->request & DEPIN_REQUEST_HELLO) {
        if (b->identified || !b->hello_pending) begin_hello(b, now);
    }
    if (!a->has_boot || a->boot != b->cfg.boot_nonce) return; /* not for this boot */
    if (a->acked_type == DEPIN_T_HELLO) {
        if (!b->hello_pending || a->seq != b->hello_seq) return; /* stale hello ack */
        b->hello_pending = 0;
        b->identified = 1;
        b->since_hello = 0;
        for (i = 0; i < b->count; i++) {
            depin_slot *s = slot_at(b, i);
            if (s->state == DEPIN_SLOT_QUEUED) transmit(b, s, now);
        }
        return;
    }
    for (i = 0; i < b->count; i++) {
        depin_slot *s = slot_at(b, i);
        if ((s->state == DEPIN_SLOT_SENT || s->state == DEPIN_SLOT_QUEUED) && s->seq == a->seq) {
            s->state = DEPIN_SLOT_ACKED;
            b->stats.acked++;
            break;
        }
    }
    pop_acked(b);
}

void depin_bridge_rx(depin_bridge *b, const uint8_t *data, size_t len, uint32_t now_ms) {
    size_t i;
    for (i = 0; i < len; i++) {
        uint8_t byte = data[i];
        if (byte != 0) {
            if (b->rx_skip) continue;
            if (b->rx_len >= DEPIN_RX_MAX) { /* too long for an ack: drop up to the delimiter */
                b->rx_skip = 1;
                b->rx_len = 0;
                b->stats.rx_bad++;
                continue;
            }
            b->rx[b->rx_len++] = byte;
            continue;
        }
        if (b->rx_skip) {
            b->rx_skip = 0;
        } else if (b->rx_len) {
            depin_frame f;
            depin_ack a;
            if (depin_frame_decode(b->rx, b->rx_len, &f) == DEPIN_OK &&
                depin_ack_parse(&f, &a) == DEPIN_OK)
                handle_ack(b, &a, now_ms);
            else
                b->stats.rx_bad++;
        }
        b->rx_len = 0;
    }
}

void depin_bridge_tick(depin_bridge *b, uint32_t now_ms) {
    unsigned i;
    if (!b->identified) {
        if (b->hello_pending && elapsed(now_ms, b->hello_sent_ms, b->cfg.hello_ms))
            (void)send_hello(b, now_ms);
        return;
    }
    for (i = 0; i < b->count; i++) {
        depin_slot *s = slot_at(b, i);
        if (s->state == DEPIN_SLOT_SENT && elapsed(now_ms, s->sent_ms, b->cfg.resend_ms)) {
            /* No ack in time: the gateway may have restarted and forgotten our hello. */
            b->stats.timeouts++;
            begin_hello(b, now_ms);
            return;
        }
    }
}

unsigned depin_bridge_unacked(const depin_bridge *b) {
    unsigned i, n = 0;
    for (i = 0; i < b->count; i++)
        if (b->ring[(b->head + i) % DEPIN_RING_SLOTS].state != DEPIN_SLOT_ACKED) n++;
    return n;
}
