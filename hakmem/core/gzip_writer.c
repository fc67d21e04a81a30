#include "gzip_writer.h"

#include <errno.h>
#include <unistd.h>

// The profile goes out as it is encoded, through a 64 KiB buffer; each full
// buffer is one stored block. Stored blocks make the file a little larger
// than compressed ones but need no compressor and no allocation.

static uint32_t g_crc_table[256];

void hak_gzip_writer_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    g_crc_table[i] = c;
  }
}

static void write_raw(hak_gzip *z, const void *buf, size_t len) {
  const uint8_t *b = buf;
  while (len > 0 && z->err == 0) {
    ssize_t w = write(z->fd, b, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      z->err = errno;
      return;
    }
    b += w;
    len -= (size_t)w;
  }
}

static void gz_block(hak_gzip *z, bool final) {
  uint8_t h[5] = {final ? 1 : 0, (uint8_t)z->len, (uint8_t)(z->len >> 8), (uint8_t)~z->len,
                  (uint8_t)(~z->len >> 8)};
  write_raw(z, h, sizeof h);
  write_raw(z, z->buf, z->len);
  z->len = 0;
}

void hak_gzip_writer_put(hak_gzip *z, const void *data, size_t len) {
  const uint8_t *b = data;
  for (size_t i = 0; i < len; i++) {
    z->crc = g_crc_table[(z->crc ^ b[i]) & 0xff] ^ (z->crc >> 8);
    z->buf[z->len++] = b[i];
    if (z->len == HAK_GZIP_BLOCK)
      gz_block(z, false);
  }
  z->total += (uint32_t)len;
}

void hak_gzip_writer_start(hak_gzip *z, int fd) {
  z->fd = fd;
  z->err = 0;
  z->crc = 0xffffffffu;
  z->total = 0;
  z->len = 0;
  static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  write_raw(z, header, sizeof header);
}

void hak_gzip_writer_finish(hak_gzip *z) {
  gz_block(z, true);
  uint32_t crc = ~z->crc;
  uint8_t t[8] = {(uint8_t)crc,
                  (uint8_t)(crc >> 8),
                  (uint8_t)(crc >> 16),
                  (uint8_t)(crc >> 24),
                  (uint8_t)z->total,
                  (uint8_t)(z->total >> 8),
                  (uint8_t)(z->total >> 16),
                  (uint8_t)(z->total >> 24)};
  write_raw(z, t, sizeof t);
}
