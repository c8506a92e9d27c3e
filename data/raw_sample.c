#include "data/source.h"
#include <stdlib.h>
#include <string.h>

void raw_sample_free(RawSample *s) {
    free(s->bytes);
    s->bytes = NULL;
    s->nbytes = s->cap = 0;
}

int raw_sample_reserve(RawSample *s, size_t n) {
    if (n <= s->cap && s->bytes) return 0;
    size_t c = s->cap ? s->cap : 4096;
    while (c < n) c = c > ((size_t)-1) / 2 ? n : c * 2;
    uint8_t *b = realloc(s->bytes, c);
    if (!b) return -1;
    s->bytes = b;
    s->cap = c;
    return 0;
}
