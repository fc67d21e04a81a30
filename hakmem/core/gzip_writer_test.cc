// Unit test of the gzip writer: the header, the stored-block framing (a block
// per 65535 bytes, the last one final), and the trailer's CRC-32 and length,
// checked byte by byte against the gzip and deflate formats (RFC 1952, 1951).
#include "hakmem/core/gzip_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

// Writes the pieces through a hak_gzip into a file and returns its bytes.
std::vector<uint8_t> Gzip(const std::vector<std::string> &pieces) {
  hak_gzip_writer_init();
  const char *dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/gzip_writer_test.XXXXXX";
  int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0);
  auto z = std::make_unique<hak_gzip>();
  hak_gzip_writer_start(z.get(), fd);
  for (const std::string &p : pieces)
    hak_gzip_writer_put(z.get(), p.data(), p.size());
  hak_gzip_writer_finish(z.get());
  EXPECT_EQ(z->err, 0);
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  ssize_t n;
  lseek(fd, 0, SEEK_SET);
  while ((n = read(fd, buf, sizeof buf)) > 0)
    out.insert(out.end(), buf, buf + n);
  close(fd);
  unlink(path.c_str());
  return out;
}

uint32_t Le32(const std::vector<uint8_t> &b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 |
         uint32_t{b[at + 3]} << 24;
}

// The payload of the stored blocks after the 10-byte header; *final_seen
// tells whether the last block was marked final and *end where it ended.
std::string Unstore(const std::vector<uint8_t> &b, size_t *end, int *blocks) {
  std::string data;
  size_t at = 10;
  *blocks = 0;
  for (;;) {
    EXPECT_LE(at + 5, b.size());
    if (at + 5 > b.size())
      break;
    uint8_t head = b[at];
    uint16_t len = static_cast<uint16_t>(b[at + 1] | b[at + 2] << 8);
    uint16_t nlen = static_cast<uint16_t>(b[at + 3] | b[at + 4] << 8);
    EXPECT_EQ(head & 6, 0) << "BTYPE 00: stored";
    EXPECT_EQ(static_cast<uint16_t>(~len), nlen);
    data.append(reinterpret_cast<const char *>(&b[at + 5]), len);
    at += 5 + len;
    ++*blocks;
    if (head & 1)
      break;
  }
  *end = at;
  return data;
}

TEST(GzipWriter, HeaderBlockAndTrailerOfAKnownString) {
  std::vector<uint8_t> b = Gzip({"12345", "6789"});
  const std::vector<uint8_t> header = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  ASSERT_EQ(b.size(), 10u + 5 + 9 + 8);
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 10), header);
  // One final stored block of 9 bytes: BFINAL 1, LEN 9, NLEN ~9.
  const std::vector<uint8_t> block = {1, 9, 0, 0xf6, 0xff};
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 10, b.begin() + 15), block);
  EXPECT_EQ(std::string(b.begin() + 15, b.begin() + 24), "123456789");
  EXPECT_EQ(Le32(b, 24), 0xcbf43926u) << "the CRC-32 check value of \"123456789\"";
  EXPECT_EQ(Le32(b, 28), 9u);
}

TEST(GzipWriter, EmptyFile) {
  std::vector<uint8_t> b = Gzip({});
  ASSERT_EQ(b.size(), 10u + 5 + 8);
  const std::vector<uint8_t> block = {1, 0, 0, 0xff, 0xff};
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 10, b.begin() + 15), block);
  EXPECT_EQ(Le32(b, 15), 0u);
  EXPECT_EQ(Le32(b, 19), 0u);
}

TEST(GzipWriter, AFullBufferIsOneStoredBlock) {
  std::string data;
  for (size_t i = 0; i < 2 * HAK_GZIP_BLOCK + 10; i++)
    data.push_back(static_cast<char>(i * 7 + i / 300));
  std::vector<uint8_t> b = Gzip({data.substr(0, 1000), data.substr(1000)});
  size_t end;
  int blocks;
  EXPECT_EQ(Unstore(b, &end, &blocks), data);
  EXPECT_EQ(blocks, 3);
  EXPECT_EQ(b[10], 0) << "a full buffer's block is not the last";
  EXPECT_EQ(b[10 + 1], 0xff);
  EXPECT_EQ(b[10 + 2], 0xff);
  ASSERT_EQ(b.size(), end + 8);
  EXPECT_EQ(Le32(b, end + 4), data.size());
  // The CRC, bit by bit (RFC 1952's reference), against the trailer's.
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; k++)
      crc = (crc & 1) ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
  }
  EXPECT_EQ(Le32(b, end), ~crc);
}

TEST(GzipWriter, AWriteErrorIsKept) {
  hak_gzip_writer_init();
  auto z = std::make_unique<hak_gzip>();
  hak_gzip_writer_start(z.get(), -1);
  hak_gzip_writer_put(z.get(), "x", 1);
  hak_gzip_writer_finish(z.get());
  EXPECT_EQ(z->err, EBADF);
}

} // namespace
