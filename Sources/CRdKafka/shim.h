#ifndef SLUICE_CRDKAFKA_SHIM_H
#define SLUICE_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>

/*
 * Small non-variadic helpers for Swift, which cannot call C variadic functions.
 */

/**
 * Enqueues one message with rd_kafka_producev(): the payload and key are copied
 * (RD_KAFKA_MSG_F_COPY), so the caller's buffers may be released on return.
 *
 * - key == NULL means a null key; key != NULL with key_len == 0 an empty key.
 * - headers may be NULL. On success librdkafka owns `headers`; on failure the
 *   caller still owns them and must destroy them.
 * - msg_opaque is handed back in the delivery report (rkmessage->_private).
 * - partition is RD_KAFKA_PARTITION_UA to let the configured partitioner choose.
 */
static inline rd_kafka_resp_err_t sluice_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                 const void *key, size_t key_len, const void *value,
                                                 size_t value_len, rd_kafka_headers_t *headers,
                                                 void *msg_opaque) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
}

/** RD_KAFKA_VERSION, the librdkafka version this module was compiled against. */
static inline int sluice_rdkafka_compiled_version(void) { return RD_KAFKA_VERSION; }

#endif
