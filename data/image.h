/* An 8-bit image as decoders produce it and augmentations transform it:
 * interleaved HWC, c = 1 (gray) or 3 (RGB). */
#pragma once
#include <stdint.h>

typedef struct Image {
    int w, h, c;
    uint8_t *px;   /* h * w * c bytes, malloc'd, owned */
} Image;

int image_alloc(Image *im, int w, int h, int c);  /* 0 ok, -1 out of memory / bad size */
void image_free(Image *im);
