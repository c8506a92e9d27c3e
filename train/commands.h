/* Sub-commands of the mixtape executable. Each takes the arguments after its
 * name and returns the process exit code (0 ok, 1 runtime failure, 2 bad input). */
#pragma once
int cmd_models(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_grads(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_data(int argc, char **argv);
/* `bench --comm` under mpirun: latency and all-reduce rates (train/cmd_bench_comm.c). */
int bench_comm(long max_bytes, int reps);
int cmd_shards(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_reparam(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
