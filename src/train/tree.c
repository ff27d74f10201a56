#include "train/tree.h"

static int cover(pc_tree_node n, int a, int b, pc_tree_node *out, int count, int max) {
    if (n.hi <= a || n.lo >= b) return count;
    if (a <= n.lo && n.hi <= b) {
        if (count < max) out[count] = n;
        return count + 1;
    }
    int mid = pc_tree_mid(n);
    count = cover((pc_tree_node){n.lo, mid}, a, b, out, count, max);
    return cover((pc_tree_node){mid, n.hi}, a, b, out, count, max);
}

int pc_tree_cover(int shards, int a, int b, pc_tree_node *out, int max) {
    return cover((pc_tree_node){0, shards}, a, b, out, 0, max);
}

int pc_tree_depth(pc_tree_node n) {
    int d = 0;
    for (int size = n.hi - n.lo; size > 1; size = size - size / 2) d++;
    return d;
}
