/* Fixture: the shared structures (header-only :types). */
#pragma once
#include <stddef.h>
typedef struct hak_block { struct hak_block *next; } hak_block;
