#include "size_class.h"

// Fast-cache bound: about 32 KiB of blocks, at least 1 and at most 256 (an
// idle thread keeps what its bins hold).
#define CAP(s) ((32768 / (s)) > 256 ? 256 : (32768 / (s)) < 1 ? 1 : (32768 / (s)))
#define SMALL(s) ((s) <= HAK_SMALL_MAX)
#define CHK_MUL(s) ((uint32_t)(((uint64_t)1 << 32) / (s) + 1))
#define CHK_LIM(s)                                                                                 \
  ((65536u / (s)-1u) * (uint32_t)((uint64_t)CHK_MUL(s) * (s) - ((uint64_t)1 << 32)) + 1u)
#define CLS(s)                                                                                     \
  {                                                                                                \
    (s), SMALL(s) ? HAK_REGION_SS_SMALL : HAK_REGION_SS_MEDIUM, CAP(s), (CAP(s) + 1) / 2,          \
        UINT64_MAX / (s) + 1, SMALL(s) ? CHK_MUL(s) : 0, SMALL(s) ? CHK_LIM(s) : 0                 \
  }

const hak_class_info hak_size_class_table[HAK_NUM_CLASSES] = {
    CLS(16),    CLS(32),    CLS(48),    CLS(64),    CLS(80),     CLS(96),     CLS(112),
    CLS(128),   CLS(160),   CLS(192),   CLS(224),   CLS(256),    CLS(320),    CLS(384),
    CLS(448),   CLS(512),   CLS(640),   CLS(768),   CLS(896),    CLS(1024),   CLS(1280),
    CLS(1536),  CLS(1792),  CLS(2048),  CLS(2560),  CLS(3072),   CLS(3584),   CLS(4096),
    CLS(5120),  CLS(6144),  CLS(7168),  CLS(8192),  CLS(10240),  CLS(12288),  CLS(14336),
    CLS(16384), CLS(20480), CLS(24576), CLS(28672), CLS(32768),  CLS(40960),  CLS(49152),
    CLS(57344), CLS(65536), CLS(81920), CLS(98304), CLS(114688), CLS(131072),
};

// Sizes lo..hi go to class bin - 1.
#define R(lo, hi, bin) [lo... hi] = HAK_BIN_SLOT(bin)
const uint8_t hak_size_class_lookup[HAK_LOOKUP_MAX + 1] = {
    R(1, 16, 1),     R(17, 32, 2),    R(33, 48, 3),    R(49, 64, 4),    R(65, 80, 5),
    R(81, 96, 6),    R(97, 112, 7),   R(113, 128, 8),  R(129, 160, 9),  R(161, 192, 10),
    R(193, 224, 11), R(225, 256, 12), R(257, 320, 13), R(321, 384, 14), R(385, 448, 15),
    R(449, 512, 16), R(513, 640, 17), R(641, 768, 18), R(769, 896, 19), R(897, 1024, 20),
};
#undef R

unsigned hak_size_class_aligned(size_t size, size_t align) {
  if (size > HAK_MEDIUM_MAX || align > HAK_PAGE_SIZE)
    return HAK_NUM_CLASSES;
  // Slab starts are page aligned, so a class whose size is a multiple of the
  // alignment has every block aligned; every power of two is a class.
  for (unsigned c = hak_size_class_of(size); c < HAK_NUM_CLASSES; c++) {
    size_t s = hak_size_class_table[c].size;
    if ((s & (align - 1)) == 0)
      return c;
  }
  return HAK_NUM_CLASSES;
}
