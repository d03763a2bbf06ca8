// Splits a register tile into the shapes a kernel is instantiated for.
#pragma once

namespace tessera::cpu::kernels {

// Runs f.template operator()<R, C>(r, c) over an nr x nc tile in pieces of kR x kC, kR x 1,
// 1 x kC and 1 x 1, so each kernel is instantiated for four shapes only.
template <int kR, int kC, class F>
inline void for_each_piece(int nr, int nc, F&& f) {
    int r = 0;
    for (; r + kR <= nr; r += kR) {
        int c = 0;
        for (; c + kC <= nc; c += kC) f.template operator()<kR, kC>(r, c);
        for (; c < nc; ++c) f.template operator()<kR, 1>(r, c);
    }
    for (; r < nr; ++r) {
        int c = 0;
        for (; c + kC <= nc; c += kC) f.template operator()<1, kC>(r, c);
        for (; c < nc; ++c) f.template operator()<1, 1>(r, c);
    }
}

}  // namespace tessera::cpu::kernels
