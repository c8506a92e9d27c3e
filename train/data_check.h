/* The data checked against the model before the first step (train --train/--val, eval --data):
 * class count, channels and image size. What the data holds is learned cheaply: HDF5 from its
 * array shape and labels; tar shards from classes.txt and the first sample's image header;
 * an ImageFolder from its class directories and the first image's header. Nothing else of
 * the dataset is read. */
#pragma once
#include "layers/model.h"
#include <stddef.h>
#include <stdio.h>

typedef struct DataFacts {
    char kind[16];          /* "hdf5" | "shards" | "imagefolder" (as loader_kind) */
    int classes;            /* -1 unknown */
    int classes_exact;      /* 1: a class list (classes.txt, class directories); 0: labels seen */
    char classes_from[64];  /* "classes.txt", "class directories", "largest label + 1" */
    int c, h, w;            /* channels, height, width of the first sample (HDF5: of all); 0 unknown */
    char sample[640];       /* the sample c/h/w came from, for messages */
} DataFacts;

/* kind: loader_kind() of the opened spec; rank / world as the loader's (shards: the first
 * shard of this rank is probed, only this rank's shards need to exist). 0 ok; -1 with err
 * naming the file. */
int data_facts(const char *spec, const char *kind, int rank, int world, DataFacts *f, char *err, size_t errn);

/* The check. what: the flag and spec for messages ("--train data/train"); model: how to name
 * the model ("the model mixer_s16_224", "checkpoint C.h5 (mixer_s16_224)"). convert
 * (--data-convert): channel conversion and upsampling are allowed and printed to out instead
 * of refused. Prints one line describing the data to out. 0 ok; -1 with err naming the data,
 * the model and both values. */
int data_check_model(const DataFacts *f, const char *what, const char *model, const ModelConfig *cfg, int convert,
                     FILE *out, char *err, size_t errn);

/* After an epoch: steps is the number of full batches it trained on (summed over ranks). When
 * skipped samples (bad images, out-of-range labels) left fewer usable samples than one batch,
 * nothing was trained and the loss is undefined: -1 with err naming the data, its sample count,
 * the skipped ones and the batch size. 0 otherwise. */
int data_check_epoch_trained(double steps, const char *spec, long samples, long skipped, int batch_size, char *err,
                             size_t errn);
