// Protocol-buffer encoding into a caller's buffer: varints, length-delimited
// fields. Enough for pprof's profile.proto, and no allocation.
#ifndef HAKMEM_PROTOBUF_WRITER_H
#define HAKMEM_PROTOBUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// A message being encoded into b[0..cap). len counts every byte encoded, also
// those that did not fit (then len > cap and the message is cut short).
typedef struct hak_pb {
  uint8_t *b;
  size_t len, cap;
} hak_pb;

// v as a base-128 varint (7 bits a byte, low first, high bit: more follow).
void hak_protobuf_writer_varint(hak_pb *m, uint64_t v) HAK_INTERNAL;
// len raw bytes, copied only if all of them fit.
void hak_protobuf_writer_bytes(hak_pb *m, const void *data, size_t len) HAK_INTERNAL;
// Field `field` as a varint (wire type 0).
void hak_protobuf_writer_uint(hak_pb *m, unsigned field, uint64_t v) HAK_INTERNAL;
// Field `field` as len bytes of data (wire type 2: length-delimited).
void hak_protobuf_writer_field(hak_pb *m, unsigned field, const void *data,
                               size_t len) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PROTOBUF_WRITER_H
