// What every Tessera shader shares: byte-addressed loads from storage buffers seen as uint
// arrays (any tensor offset that is a multiple of 2 works, and no 8- or 16-bit storage
// feature is needed: 16-bit stores are atomics on 32-bit words), the type ids (GGUF's), and
// a linear workgroup id over a 2-D grid (the host splits large counts over y).
#extension GL_EXT_control_flow_attributes : enable

const uint T_F32 = 0u, T_F16 = 1u, T_Q4_0 = 2u, T_Q4_1 = 3u, T_Q5_0 = 6u, T_Q5_1 = 7u, T_Q8_0 = 8u, T_Q2_K = 10u,
           T_Q3_K = 11u, T_Q4_K = 12u, T_Q5_K = 13u, T_Q6_K = 14u, T_I32 = 26u, T_I64 = 27u, T_BF16 = 30u;

#define U8(B, o) ((B[(o) >> 2] >> (((o) & 3u) * 8u)) & 0xFFu)
#define U16(B, o) ((B[(o) >> 2] >> (((o) & 2u) * 8u)) & 0xFFFFu)
#define U32(B, o) (U16(B, o) | (U16(B, (o) + 2u) << 16))
#define I8(B, o) (int(U8(B, o) << 24) >> 24)
#define F32(B, o) uintBitsToFloat(B[(o) >> 2])
#define F16(B, o) unpackHalf2x16(U16(B, o)).x
#define BF16(B, o) uintBitsToFloat(U16(B, o) << 16)

uint group_id() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
