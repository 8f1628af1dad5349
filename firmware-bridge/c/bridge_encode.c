/* bridge_encode - host CLI over depin_bridge.c for tests/test_bridge_c.py.
 *
 * Reads commands from stdin, one per line, answers each with one line (link commands: any
 * number of "tx HEX" lines, then "."). HEX "-" is the empty string.
 *
 *   cobs_enc HEX            -> HEX | error CODE
 *   cobs_dec HEX            -> HEX | error CODE
 *   crc HEX                 -> 8 hex digits (the CRC-32 as a number)
 *   frame TYPE SEQ OPS...   -> wire HEX (0x00 included); OPS build the CBOR payload:
 *                              M<n> map, A<n> array, U<u64> uint, I<i64> int, D<double> float,
 *                              S<hex> text (UTF-8 as hex), B<hex> bytes, T true, F false, N null
 *   decode HEX              -> ok TYPE SEQ PAYLOADHEX | error CODE        (frame layer only)
 *   ack HEX                 -> ok SEQ HAS_BOOT BOOT ACKED_TYPE REQUEST | error CODE
 *   init BOOT RESEND_MS HELLO_MS HELLO_EVERY    (link; device "c-sim-01", 3 sensors) -> .
 *   start NOW | tick NOW | rx NOW HEX           -> tx lines, .
 *   reading NOW SENSOR VALUE UNIX_TIME          -> tx lines, "status NAME", .
 *   unacked                                     -> N
 */
#include "depin_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t scratch[8192];

/* The next blank-separated token of *p (C99 has no strtok_r), or NULL. */
static char *token(char **p) {
    char *start = *p, *end;
    if (!start) return NULL;
    while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n') start++;
    if (!*start) {
        *p = start;
        return NULL;
    }
    end = start;
    while (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') end++;
    if (*end) *end++ = '\0';
    *p = end;
    return start;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = 0;
    if (strcmp(hex, "-") == 0) return 0;
    while (hex[0] && hex[1] && n < cap) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static void put_hex(const uint8_t *data, size_t n) {
    size_t i;
    if (!n) fputs("-", stdout);
    for (i = 0; i < n; i++) printf("%02x", data[i]);
}

static void tx(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    fputs("tx ", stdout);
    put_hex(data, len);
    putchar('\n');
}

static int build_payload(char **save, depin_cbor *c) {
    char *op;
    static uint8_t tmp[4096];
    while ((op = token(save)) != NULL) {
        switch (op[0]) {
        case 'M': depin_cbor_map(c, strtoull(op + 1, NULL, 10)); break;
        case 'A': depin_cbor_array(c, strtoull(op + 1, NULL, 10)); break;
        case 'U': depin_cbor_uint(c, strtoull(op + 1, NULL, 10)); break;
        case 'I': depin_cbor_int(c, strtoll(op + 1, NULL, 10)); break;
        case 'D': depin_cbor_double(c, strtod(op + 1, NULL)); break;
        case 'S': {
            size_t n = unhex(op + 1, tmp, sizeof tmp);
            depin_cbor_text(c, (const char *)tmp, n);
            break;
        }
        case 'B': depin_cbor_bytes(c, tmp, unhex(op + 1, tmp, sizeof tmp)); break;
        case 'T': depin_cbor_bool(c, 1); break;
        case 'F': depin_cbor_bool(c, 0); break;
        case 'N': depin_cbor_null(c); break;
        default: return DEPIN_ERR_ARG;
        }
    }
    return c->err;
}

static const depin_sensor sensors[] = {{"pm2_5", "ug/m3"}, {"humidity", "%RH"}, {"temperature", "Cel"}};

int main(void) {
    static char line[16384];
    static uint8_t in[4096], out[8192];
    static depin_bridge link;
    while (fgets(line, sizeof line, stdin)) {
        char *save = line;
        char *cmd = token(&save);
        char *arg = NULL;
        size_t n = 0, m = 0;
        int rc;
        if (!cmd) continue;
        if (strcmp(cmd, "cobs_enc") == 0 || strcmp(cmd, "cobs_dec") == 0 ||
            strcmp(cmd, "crc") == 0 || strcmp(cmd, "decode") == 0 || strcmp(cmd, "ack") == 0) {
            arg = token(&save);
            n = unhex(arg ? arg : "-", in, sizeof in);
        }
        if (strcmp(cmd, "cobs_enc") == 0 || strcmp(cmd, "cobs_dec") == 0) {
            rc = cmd[5] == 'e' ? depin_cobs_encode(in, n, out, sizeof out, &m)
                               : depin_cobs_decode(in, n, out, sizeof out, &m);
            if (rc == DEPIN_OK) put_hex(out, m);
            else printf("error %s", depin_status_name(rc));
            putchar('\n');
        } else if (strcmp(cmd, "crc") == 0) {
            printf("%08lx\n", (unsigned long)depin_crc32(0, in, n));
        } else if (strcmp(cmd, "frame") == 0) {
            char *type = token(&save);
            char *seq = token(&save);
            depin_cbor c;
            depin_cbor_init(&c, scratch, sizeof scratch);
            rc = (type && seq) ? build_payload(&save, &c) : DEPIN_ERR_ARG;
            if (rc == DEPIN_OK)
                rc = depin_frame_encode((uint8_t)atoi(type), (uint16_t)atol(seq), scratch, c.len,
                                        out, sizeof out, &m);
            if (rc == DEPIN_OK) put_hex(out, m);
            else printf("error %s", depin_status_name(rc));
            putchar('\n');
        } else if (strcmp(cmd, "decode") == 0 || strcmp(cmd, "ack") == 0) {
            depin_frame f;
            depin_ack a;
            rc = depin_frame_decode(in, n, &f);
            if (rc == DEPIN_OK && cmd[0] == 'a') rc = depin_ack_parse(&f, &a);
            if (rc != DEPIN_OK) {
                printf("error %s\n", depin_status_name(rc));
            } else if (cmd[0] == 'd') {
                printf("ok %u %u ", (unsigned)f.type, (unsigned)f.seq);
                put_hex(f.payload, f.payload_len);
                putchar('\n');
            } else {
                printf("ok %u %u %08lx %u %lu\n", (unsigned)a.seq, (unsigned)a.has_boot,
                       (unsigned long)a.boot, (unsigned)a.acked_type, (unsigned long)a.request);
            }
        } else if (strcmp(cmd, "init") == 0) {
            depin_config cfg;
            char *boot = token(&save);
            char *resend = token(&save);
            char *hello = token(&save);
            char *every = token(&save);
            memset(&cfg, 0, sizeof cfg);
            cfg.write = tx;
            cfg.device_id = "c-sim-01";
            cfg.firmware = "0.1.0";
            cfg.sensors = sensors;
            cfg.sensor_count = 3;
            cfg.boot_nonce = boot ? (uint32_t)strtoul(boot, NULL, 16) : 1;
            cfg.resend_ms = resend ? (uint32_t)strtoul(resend, NULL, 10) : 0;
            cfg.hello_ms = hello ? (uint32_t)strtoul(hello, NULL, 10) : 0;
            cfg.hello_every = every ? (uint32_t)strtoul(every, NULL, 10) : 0;
            rc = depin_bridge_init(&link, &cfg);
            if (rc != DEPIN_OK) printf("status %s\n", depin_status_name(rc));
            puts(".");
        } else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "tick") == 0 ||
                   strcmp(cmd, "rx") == 0 || strcmp(cmd, "reading") == 0) {
            char *now_s = token(&save);
            uint32_t now = now_s ? (uint32_t)strtoul(now_s, NULL, 10) : 0;
            if (cmd[0] == 's') {
                (void)depin_bridge_start(&link, now);
            } else if (cmd[0] == 't') {
                depin_bridge_tick(&link, now);
            } else if (cmd[1] == 'x') {
                arg = token(&save);
                n = unhex(arg ? arg : "-", in, sizeof in);
                depin_bridge_rx(&link, in, n, now);
            } else {
                char *sensor = token(&save);
                char *value = token(&save);
                char *unix_time = token(&save);
                rc = depin_bridge_reading(&link, (uint16_t)(sensor ? atoi(sensor) : 0),
                                          value ? strtod(value, NULL) : 0.0,
                                          unix_time ? (uint32_t)strtoul(unix_time, NULL, 10) : 0,
                                          now);
                printf("status %s\n", depin_status_name(rc));
            }
            puts(".");
        } else if (strcmp(cmd, "unacked") == 0) {
            printf("%u\n", depin_bridge_unacked(&link));
        } else {
            printf("error arg\n");
        }
        fflush(stdout);
    }
    return 0;
}
