#include "protobuf_writer.h"

#include <string.h>

void hak_protobuf_writer_varint(hak_pb *m, uint64_t v) {
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    if (v != 0)
      byte |= 0x80;
    if (m->len < m->cap)
      m->b[m->len] = byte;
    m->len++;
  } while (v != 0);
}

void hak_protobuf_writer_bytes(hak_pb *m, const void *data, size_t len) {
  if (m->len + len <= m->cap)
    memcpy(m->b + m->len, data, len);
  m->len += len;
}

void hak_protobuf_writer_uint(hak_pb *m, unsigned field, uint64_t v) {
  hak_protobuf_writer_varint(m, (uint64_t)field << 3);
  hak_protobuf_writer_varint(m, v);
}

void hak_protobuf_writer_field(hak_pb *m, unsigned field, const void *data, size_t len) {
  hak_protobuf_writer_varint(m, (uint64_t)field << 3 | 2);
  hak_protobuf_writer_varint(m, len);
  hak_protobuf_writer_bytes(m, data, len);
}
