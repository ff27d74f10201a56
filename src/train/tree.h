/* The fixed reduction tree over shard indices. Node (lo, hi) covers shards
 * [lo, hi); its children are (lo, mid) and (mid, hi) with mid = lo + (hi - lo) / 2.
 * Gradients are always summed along this tree, whoever computes the pieces, so the
 * floating-point result does not depend on the number of workers. */
#ifndef PC_TREE_H
#define PC_TREE_H

typedef struct {
    int lo, hi;
} pc_tree_node;

static inline int pc_tree_mid(pc_tree_node n) { return n.lo + (n.hi - n.lo) / 2; }

/* The maximal tree nodes inside [a, b), left to right (a worker owning shards
 * [a, b) reduces exactly these). Returns how many (at most 2*log2(shards)+2). */
int pc_tree_cover(int shards, int a, int b, pc_tree_node *out, int max);

/* Depth of the deepest leaf under node (0 for a leaf). */
int pc_tree_depth(pc_tree_node n);

#endif
