#pragma once
/* Private to :slab (in its srcs). */
#define HAK_SLAB_BATCH 8
