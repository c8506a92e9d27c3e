/* Class names stored in a checkpoint: the root attribute `class_names`, a JSON list
 * of strings, one per class (count == the model's num_classes), each at most 256
 * bytes of UTF-8 without control characters. `train` writes it from classes.txt or
 * the ImageFolder's sub-directories; `predict` and `eval` read it when the data
 * brings no names. The attribute comes from a possibly hostile file: it is bounded
 * and validated before use. */
#pragma once
#include <stddef.h>

#define CLASS_NAME_MAX 256
#define CLASS_NAMES_JSON_MAX ((size_t)16 << 20)

/* JSON list of names; NULL with err when a name is invalid (too long, control
 * character, bad UTF-8, empty) or out of memory. malloc'd. */
char *class_names_to_json(const char *const *names, int n, char *err, size_t errn);
/* Parse and validate; exactly num_classes names. *names malloc'd (class_names_free).
 * what names the source in messages ("checkpoint C.h5: attribute class_names"). */
int class_names_parse(const char *json, size_t len, int num_classes, const char *what, char ***names, char *err,
                      size_t errn);
/* From checkpoint path: absent attribute -> 0 with *names NULL, *n 0; present -> 0 with
 * num_classes names; unreadable or invalid -> -1 with err naming the file. */
int class_names_read(const char *path, int num_classes, char ***names, int *n, char *err, size_t errn);
void class_names_free(char **names, int n);
