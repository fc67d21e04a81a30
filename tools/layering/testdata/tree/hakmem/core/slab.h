#pragma once
#include "types.h"
hak_block *hak_slab_take(int cls);
