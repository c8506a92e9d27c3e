/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_train(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'train' is not implemented yet\n");
    return 1;
}
