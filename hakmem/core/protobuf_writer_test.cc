// Unit test of the protobuf writer: varints of known values (the protocol
// buffers encoding guide's examples among them), fields, and a buffer too
// small, which counts what did not fit and writes nothing past its end.
#include "hakmem/core/protobuf_writer.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

std::vector<uint8_t> Varint(uint64_t v) {
  uint8_t buf[16];
  hak_pb m = {buf, 0, sizeof buf};
  hak_protobuf_writer_varint(&m, v);
  return std::vector<uint8_t>(buf, buf + m.len);
}

TEST(ProtobufWriter, VarintsOfKnownValues) {
  EXPECT_EQ(Varint(0), (std::vector<uint8_t>{0x00}));
  EXPECT_EQ(Varint(1), (std::vector<uint8_t>{0x01}));
  EXPECT_EQ(Varint(127), (std::vector<uint8_t>{0x7f}));
  EXPECT_EQ(Varint(128), (std::vector<uint8_t>{0x80, 0x01}));
  EXPECT_EQ(Varint(150), (std::vector<uint8_t>{0x96, 0x01}));
  EXPECT_EQ(Varint(300), (std::vector<uint8_t>{0xac, 0x02}));
  EXPECT_EQ(Varint(16384), (std::vector<uint8_t>{0x80, 0x80, 0x01}));
  EXPECT_EQ(Varint(UINT64_MAX),
            (std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
}

TEST(ProtobufWriter, Fields) {
  uint8_t buf[64];
  hak_pb m = {buf, 0, sizeof buf};
  hak_protobuf_writer_uint(&m, 1, 150);           // 08 96 01
  hak_protobuf_writer_field(&m, 2, "testing", 7); // 12 07 't' 'e' 's' 't' 'i' 'n' 'g'
  hak_protobuf_writer_uint(&m, 16, 1);            // field 16: a two-byte key, 80 01
  const std::vector<uint8_t> want = {0x08, 0x96, 0x01, 0x12, 0x07, 't',  'e', 's',
                                     't',  'i',  'n',  'g',  0x80, 0x01, 0x01};
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + m.len), want);
}

TEST(ProtobufWriter, ATooSmallBufferCountsButDoesNotOverflow) {
  uint8_t buf[8];
  for (uint8_t &b : buf)
    b = 0xee;
  hak_pb m = {buf, 0, 4};
  hak_protobuf_writer_varint(&m, 300);        // fits: 2 bytes
  hak_protobuf_writer_bytes(&m, "abcdef", 6); // does not fit: not copied at all
  EXPECT_EQ(m.len, 8u);
  EXPECT_EQ(buf[0], 0xac);
  EXPECT_EQ(buf[1], 0x02);
  for (int i = 2; i < 8; i++)
    EXPECT_EQ(buf[i], 0xee) << i;
  hak_protobuf_writer_varint(&m, UINT64_MAX); // past the end: counted only
  EXPECT_EQ(m.len, 18u);
  for (int i = 4; i < 8; i++)
    EXPECT_EQ(buf[i], 0xee) << i;
}

} // namespace
