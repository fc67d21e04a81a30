// A gzip file written as it is produced, with stored (uncompressed) deflate
// blocks: no compressor and no allocation, for the heap profile.
#ifndef HAKMEM_GZIP_WRITER_H
#define HAKMEM_GZIP_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// The largest stored block deflate allows: each full buffer is one block.
#define HAK_GZIP_BLOCK 65535u

// One file being written. 64 KiB: too much for some threads' stacks, so the
// caller maps it.
typedef struct hak_gzip {
  int fd;
  int err; // an errno
  uint32_t crc;
  uint32_t total;
  uint32_t len;
  uint8_t buf[HAK_GZIP_BLOCK];
} hak_gzip;

// Fills the CRC-32 table; once, before the first hak_gzip_writer_start.
void hak_gzip_writer_init(void) HAK_INTERNAL;

// Starts a file on fd: writes the gzip header.
void hak_gzip_writer_start(hak_gzip *z, int fd) HAK_INTERNAL;
// Appends len bytes of data, writing a stored block each time the buffer fills.
void hak_gzip_writer_put(hak_gzip *z, const void *data, size_t len) HAK_INTERNAL;
// Writes the last block and the trailer (CRC-32, length). z->err is the first
// write error (an errno), 0 if none.
void hak_gzip_writer_finish(hak_gzip *z) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_GZIP_WRITER_H
