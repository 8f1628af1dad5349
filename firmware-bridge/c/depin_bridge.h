/*
 * depin_bridge.h - firmware side of the depin firmware bridge (see ../PROTOCOL.md).
 *
 * Plain C99, no heap, no clock, no libc beyond <string.h> (memcpy, memset, strlen) and the
 * freestanding headers <stdint.h> / <stddef.h>. Usable from Arduino (C++ includes it as C) and
 * ESP-IDF. Not thread-safe: call every depin_bridge_* function from one task (or lock around them).
 *
 * Wire format (PROTOCOL.md section 3):
 *     COBS( version=1 | type u8 | seq u16 LE | CBOR map payload | CRC-32 (zlib) LE ) 0x00
 *
 * Layers, each usable on its own:
 *     depin_crc32            CRC-32 as zlib computes it
 *     depin_cobs_*           COBS encode / decode (decode works in place)
 *     depin_cbor_*           a minimal CBOR encoder (uint, int, float, text, bytes, array, map...)
 *     depin_frame_*          one frame: encode to wire bytes, decode + check wire bytes
 *     depin_ack_*            the gateway's ack frame: parse (and encode, for tests)
 *     depin_bridge_*         the link: hello handshake, ring of unacked readings, resend timer
 *
 * Typical use (Arduino):
 *
 *     static void uart_write(void *ctx, const uint8_t *d, size_t n) { Serial1.write(d, n); }
 *     static const depin_sensor sensors[] = {{"pm2_5", "ug/m3"}, {"humidity", "%RH"},
 *                                            {"temperature", "Cel"}};
 *     static depin_bridge link;
 *     depin_config cfg = {0};
 *     cfg.write = uart_write; cfg.device_id = "esp32-0a1b2c"; cfg.firmware = "1.0.0";
 *     cfg.sensors = sensors; cfg.sensor_count = 3; cfg.boot_nonce = esp_random();
 *     depin_bridge_init(&link, &cfg);
 *     depin_bridge_start(&link, millis());
 *     loop: while (Serial1.available()) { uint8_t c = Serial1.read();
 *                                         depin_bridge_rx(&link, &c, 1, millis()); }
 *           depin_bridge_tick(&link, millis());
 *           if (due) depin_bridge_reading(&link, 2, read_temp(), unix_time_or_0, millis());
 */
#ifndef DEPIN_BRIDGE_H
#define DEPIN_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- compile-time sizes (override with -D) ------------------------------------------------ */

/* Largest CBOR payload this firmware sends (the hello is usually the largest). */
#ifndef DEPIN_MAX_PAYLOAD
#define DEPIN_MAX_PAYLOAD 96
#endif
/* Unacked readings kept for resend; RAM use is about DEPIN_RING_SLOTS * DEPIN_MAX_WIRE. */
#ifndef DEPIN_RING_SLOTS
#define DEPIN_RING_SLOTS 8
#endif
/* Receive buffer for gateway frames (acks are about 20 bytes on the wire). */
#ifndef DEPIN_RX_MAX
#define DEPIN_RX_MAX 48
#endif

#define DEPIN_VERSION 1
#define DEPIN_HEADER 4
#define DEPIN_CRC 4
#define DEPIN_MIN_FRAME (DEPIN_HEADER + 1 + DEPIN_CRC)
#define DEPIN_MAX_FRAME (DEPIN_HEADER + DEPIN_MAX_PAYLOAD + DEPIN_CRC)
/* COBS adds one byte per 254 plus one; the 0x00 delimiter adds one more. */
#define DEPIN_MAX_WIRE (DEPIN_MAX_FRAME + DEPIN_MAX_FRAME / 254 + 2)

#if DEPIN_RING_SLOTS < 1 || DEPIN_RING_SLOTS > 255
#error "DEPIN_RING_SLOTS must be 1..255"
#endif

/* Frame types (PROTOCOL.md section 3). */
enum { DEPIN_T_READING = 1, DEPIN_T_HELLO = 2, DEPIN_T_ACK = 3, DEPIN_T_LOG = 4 };
/* Bits of the ack frame's request field (key 2). */
#define DEPIN_REQUEST_HELLO 0x01u
/* Log levels (key 0 of a log frame). */
enum { DEPIN_LOG_DEBUG = 0, DEPIN_LOG_INFO = 1, DEPIN_LOG_WARN = 2, DEPIN_LOG_ERROR = 3 };

/* Results. The names (depin_status_name) are the error codes of ../vectors.json. */
typedef enum {
    DEPIN_OK = 0,
    DEPIN_ERR_SPACE = -1,   /* "space": output buffer too small, payload too large */
    DEPIN_ERR_COBS = -2,    /* "cobs": not valid COBS */
    DEPIN_ERR_LENGTH = -3,  /* "length": decoded frame shorter than 9 or longer than the max */
    DEPIN_ERR_CRC = -4,     /* "crc" */
    DEPIN_ERR_VERSION = -5, /* "version": not protocol version 1 */
    DEPIN_ERR_TYPE = -6,    /* "type": unknown frame type, or not the type expected */
    DEPIN_ERR_CBOR = -7,    /* "cbor": payload not one well-formed item of the allowed kinds */
    DEPIN_ERR_PAYLOAD = -8, /* "payload": well-formed, but wrong keys or values for the type */
    DEPIN_ERR_FULL = -9,    /* "full": the ring of unacked readings is full */
    DEPIN_ERR_ARG = -10     /* "arg": bad argument (NULL, missing config) */
} depin_status;

const char *depin_status_name(int status);

/* ---- CRC-32 and COBS ------------------------------------------------------------------------ */

/* zlib's crc32(): start with crc = 0; feed chunks by passing the previous result. */
uint32_t depin_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Encode n bytes; out gets at most n + n/254 + 1 bytes, no 0x00, no delimiter. */
int depin_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);
/* Decode n bytes (no delimiter). out may equal in (decodes in place). */
int depin_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* ---- CBOR encoder (RFC 8949, preferred serialization: shortest heads and floats) ----------- */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err; /* sticky: the first error; DEPIN_OK while everything fitted */
} depin_cbor;

void depin_cbor_init(depin_cbor *c, uint8_t *buf, size_t cap);
void depin_cbor_uint(depin_cbor *c, uint64_t v);
void depin_cbor_int(depin_cbor *c, int64_t v);
/* Floats are written in the shortest of float16 / float32 (/ float64) that is exact. */
void depin_cbor_float(depin_cbor *c, float v);
void depin_cbor_double(depin_cbor *c, double v);
void depin_cbor_bool(depin_cbor *c, int v);
void depin_cbor_null(depin_cbor *c);
void depin_cbor_text(depin_cbor *c, const char *s, size_t n);
void depin_cbor_cstr(depin_cbor *c, const char *s);
void depin_cbor_bytes(depin_cbor *c, const uint8_t *b, size_t n);
void depin_cbor_array(depin_cbor *c, size_t items);
void depin_cbor_map(depin_cbor *c, size_t pairs); /* then key, value, key, value ... */

/* ---- frames --------------------------------------------------------------------------------- */

/* Encode one frame to wire bytes, 0x00 delimiter included. */
int depin_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t cap, size_t *out_len);

typedef struct {
    uint8_t type;
    uint16_t seq;
    const uint8_t *payload; /* points into the decoded buffer */
    size_t payload_len;
} depin_frame;

/* Decode wire bytes in place (buf[0..n), one trailing 0x00 allowed) and check COBS, length,
 * CRC, version and type. The CBOR payload is not looked at (see depin_ack_parse). */
int depin_frame_decode(uint8_t *buf, size_t n, depin_frame *f);

/* ---- the gateway's ack frame (PROTOCOL.md section 6) --------------------------------------- */

typedef struct {
    uint16_t seq;       /* the seq being acked (header seq) */
    uint8_t has_boot;   /* key 0 present: this acks frame `seq` of session `boot` */
    uint32_t boot;      /* key 0: the boot nonce of the acked frame's session */
    uint8_t acked_type; /* key 1: DEPIN_T_READING (default) or DEPIN_T_HELLO */
    uint32_t request;   /* key 2: DEPIN_REQUEST_* bits, 0 if absent */
} depin_ack;

int depin_ack_parse(const depin_frame *f, depin_ack *a);
/* The gateway side, for tests and loopback: has_boot == 0 encodes a pure request. */
int depin_ack_encode(const depin_ack *a, uint8_t *out, size_t cap, size_t *out_len);

/* ---- the link -------------------------------------------------------------------------------- */

typedef void (*depin_write_fn)(void *ctx, const uint8_t *data, size_t len);

typedef struct {
    const char *name; /* sensor index = position in the hello's sensor list */
    const char *unit; /* UCUM-style unit text, "" for none */
} depin_sensor;

typedef struct {
    depin_write_fn write; /* required: write bytes to the UART (may block briefly) */
    void *write_ctx;
    const char *device_id; /* required: 1-64 chars of A-Z a-z 0-9 . _ - , stable per device */
    const char *firmware;  /* required: firmware version text */
    const depin_sensor *sensors;
    uint8_t sensor_count;
    uint32_t boot_nonce;  /* required: differs on every boot (RNG, or a persisted boot counter) */
    uint32_t resend_ms;   /* unacked reading timeout; 0 = 2000 */
    uint32_t hello_ms;    /* hello retry interval while unidentified; 0 = 1000 */
    uint32_t hello_every; /* re-send hello after this many new readings; 0 = never */
} depin_config;

enum { DEPIN_SLOT_FREE = 0, DEPIN_SLOT_QUEUED = 1, DEPIN_SLOT_SENT = 2, DEPIN_SLOT_ACKED = 3 };

typedef struct {
    uint8_t state;
    uint8_t tries; /* times written (saturates the statistics only) */
    uint16_t seq;
    uint16_t len;
    uint32_t sent_ms;
    uint8_t wire[DEPIN_MAX_WIRE];
} depin_slot;

typedef struct {
    uint32_t sent;     /* reading frames written, first sends */
    uint32_t resent;   /* reading frames written again */
    uint32_t acked;    /* readings acked */
    uint32_t rejected; /* readings refused because the ring was full */
    uint32_t hellos;   /* hello frames written */
    uint32_t timeouts; /* resend timeouts (each starts a hello handshake) */
    uint32_t rx_bad;   /* received frames that failed a check */
} depin_stats;

typedef struct {
    depin_config cfg;
    uint32_t next_seq; /* extended: low 16 bits = the next reading's seq, high 16 = wrap count */
    depin_slot ring[DEPIN_RING_SLOTS];
    uint8_t head;  /* oldest slot */
    uint8_t count; /* slots in use (queued, sent, or acked but behind an unacked older one) */
    uint8_t identified;
    uint8_t hello_pending;
    uint16_t hello_seq;
    uint32_t hello_sent_ms;
    uint32_t since_hello;
    uint8_t rx[DEPIN_RX_MAX];
    uint16_t rx_len;
    uint8_t rx_skip;
    depin_stats stats;
} depin_bridge;

int depin_bridge_init(depin_bridge *b, const depin_config *cfg);
/* Write a lone 0x00 (ends any partial frame at the gateway) and the hello. Call once at boot. */
int depin_bridge_start(depin_bridge *b, uint32_t now_ms);
/* Queue a reading whose CBOR map payload the caller built; sends it at once when identified.
 * DEPIN_ERR_FULL: the ring is full, the reading was NOT queued (no seq used); retry or drop it. */
int depin_bridge_enqueue(depin_bridge *b, const uint8_t *payload, size_t len, uint32_t now_ms);
/* Convenience: {0: sensor, 1: value, 2: unix_time} (key 2 omitted when unix_time == 0). */
int depin_bridge_reading(depin_bridge *b, uint16_t sensor, double value, uint32_t unix_time,
                         uint32_t now_ms);
/* A log line, best effort (never queued, never acked, not sent while unidentified). */
int depin_bridge_log(depin_bridge *b, uint8_t level, const char *message, uint32_t now_ms);
/* Bytes read from the UART, any chunking. */
void depin_bridge_rx(depin_bridge *b, const uint8_t *data, size_t len, uint32_t now_ms);
/* Timers: hello retry, resend timeout. Call often (every loop or every ~50 ms). */
void depin_bridge_tick(depin_bridge *b, uint32_t now_ms);
/* Readings queued and not yet acked. */
unsigned depin_bridge_unacked(const depin_bridge *b);

#ifdef __cplusplus
}
#endif

#endif /* DEPIN_BRIDGE_H */
