// C shim for superslab_test.cc: SuperSlab creation, geometry and per-slab
// metadata, exposed through plain functions.
#include "link.h"
#include "segment_map.h"
#include "size_class.h"
#include "stats.h"
#include "superslab.h"
#include "thread_heap.h"

void ss_init(void) { hak_init(); }
void *ss_create(unsigned kind) { return hak_superslab_create((uint8_t)kind); }
void ss_destroy(void *ss) { hak_superslab_destroy(ss); }
void *ss_of(const void *p) { return hak_superslab_of(p); }
void *ss_slab_of(const void *p, unsigned kind) { return hak_slab_of(p, kind); }
void *ss_slab_at(void *ss, unsigned i) { return &((hak_superslab *)ss)->slabs[i]; }
int ss_magic_ok(const void *ss) {
  return ((const hak_superslab *)ss)->magic == (HAK_SS_MAGIC ^ (uintptr_t)ss);
}
unsigned ss_kind(const void *ss) { return ((const hak_superslab *)ss)->kind; }
unsigned ss_slab_shift(const void *ss) { return ((const hak_superslab *)ss)->slab_shift; }
unsigned ss_nslabs(const void *ss) { return ((const hak_superslab *)ss)->nslabs; }
uint32_t ss_free_mask(const void *ss) { return ((const hak_superslab *)ss)->free_mask; }

void *ss_init_slab(void *ss, unsigned slot, unsigned cls) {
  return hak_superslab_init_slab(ss, slot, cls);
}
void *ss_slab_start(const void *s) { return ((const hak_slab *)s)->start; }
unsigned ss_slab_capacity(const void *s) { return ((const hak_slab *)s)->capacity; }
unsigned ss_slab_block_size(const void *s) { return ((const hak_slab *)s)->block_size; }
unsigned ss_slab_carved(const void *s) { return ((const hak_slab *)s)->carved; }
unsigned ss_slab_used(const void *s) { return ((const hak_slab *)s)->used; }
unsigned ss_slab_class(const void *s) { return ((const hak_slab *)s)->class_idx; }
unsigned ss_slab_slot(const void *s) { return ((const hak_slab *)s)->slot; }
unsigned ss_slab_state(const void *s) { return ((const hak_slab *)s)->state; }
int ss_slab_has_free(const void *s) { return ((const hak_slab *)s)->free != NULL; }
void ss_slab_set_carved(void *s, unsigned n) { ((hak_slab *)s)->carved = (uint16_t)n; }
void ss_slab_set_state(void *s, unsigned state) { ((hak_slab *)s)->state = (uint8_t)state; }
int ss_is_block(const void *s, const void *p) { return hak_slab_is_block(s, p); }

unsigned ss_segmap_kind(const void *p) { return hak_segmap_kind(p); }
uint64_t ss_count(void) { return atomic_load(&hak_gstats.superslabs); }
uint64_t ss_total(void) { return atomic_load(&hak_gstats.superslabs_total); }

int ss_hardened(void) { return HAKMEM_HARDENED; }
unsigned ss_num_classes(void) { return HAK_NUM_CLASSES; }
unsigned ss_class_kind(unsigned cls) { return hak_classes[cls].region_kind; }
size_t ss_class_size(unsigned cls) { return hak_classes[cls].size; }
size_t ss_size(void) { return HAK_SS_SIZE; }
size_t ss_header_size(void) { return HAK_SS_HEADER_SIZE; }
size_t ss_slab_meta_size(void) { return sizeof(hak_slab); }
size_t ss_header_struct_size(void) { return sizeof(hak_superslab); }
unsigned ss_small(void) { return HAK_REGION_SS_SMALL; }
unsigned ss_medium(void) { return HAK_REGION_SS_MEDIUM; }
unsigned ss_none(void) { return HAK_REGION_NONE; }
unsigned ss_state_free(void) { return HAK_SLAB_FREE; }
unsigned ss_state_active(void) { return HAK_SLAB_ACTIVE; }
