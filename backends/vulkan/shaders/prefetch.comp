#version 450
// Weights read ahead into the GPU's L2 cache: the first bytes of a decoding product's weights,
// loaded by a dispatch recorded beside the small nodes of the level before the product's
// (vulkan_record.cpp's prefetch_ahead), so that memory streams while those run and the
// product's first workgroups find their rows in the cache rather than waiting on memory after
// the barrier. An invocation reads one word of each of 8 32-byte sectors (the cache's fill
// unit); the words' XOR goes to the sink only where it equals p.magic, which keeps the loads
// and almost never writes.
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = 256) in;
layout(binding = 0) buffer S { uint sink[]; };
layout(binding = 1) readonly buffer D { uint d[]; };
layout(push_constant) uniform P {
    uint off, words;  // the words to read, from word off of binding 1
    uint sink_off, magic;
} p;

void main() {
    const uint base = gl_WorkGroupID.x * 2048u + gl_LocalInvocationID.x;  // in sectors
    uint x = 0u;
    [[unroll]] for (uint u = 0u; u < 8u; ++u) {
        const uint w = (base + 256u * u) * 8u;
        if (w < p.words) x ^= d[p.off + w];
    }
    if (x == p.magic) sink[p.sink_off] = x;
}
