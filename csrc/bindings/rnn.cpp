// bindings/rnn.cpp: rnn_*, lstm_*, gru_* forward / backward over whole sequences (layouts in cpu/rnn.h):
// xs (N, L, D), Wx (D, G*H), Wh (H, G*H), b (G*H,), states (N, H), sequences of states (N, L, H).
#include "bindings/bind_util.h"
#include "cpu/rnn.h"
#include "cpu/threads.h"

namespace fastconv::bind {
namespace {

using i64 = std::int64_t;

// N, L, D from xs and H from Wh, the sizes every entry point reads first.
struct Seq {
  i64 N, L, D, H;
};

Seq seq_dims(const py::array& xs, const py::array& wh) {
  return {dim(xs, "xs", 3, 0), dim(xs, "xs", 3, 1), dim(xs, "xs", 3, 2), dim(wh, "Wh", 2, 0)};
}

template <typename T>
void rnn_forward_py(py::array xs, py::array wx, py::array wh, py::array b, py::array h0, py::array hs) {
  const Seq s = seq_dims(xs, wh);
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, s.H});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, s.H});
  const T* pb = in_ptr<T>(b, "b", {s.H});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  T* phs = out_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  py::gil_scoped_release nogil;
  cpu::rnn_forward<T>(px, pwx, pwh, pb, ph0, phs, s.N, s.L, s.D, s.H, cpu::num_threads());
}

template <typename T>
void rnn_backward_py(py::array xs, py::array wx, py::array wh, py::array h0, py::array hs, py::array dhs,
                     py::array dxs, py::array dwx, py::array dwh, py::array db, py::array dh0) {
  const Seq s = seq_dims(xs, wh);
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, s.H});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, s.H});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  const T* phs = in_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  const T* pdhs = in_ptr<T>(dhs, "dhs", {s.N, s.L, s.H});
  T* pdxs = out_ptr<T>(dxs, "dxs", {s.N, s.L, s.D});
  T* pdwx = out_ptr<T>(dwx, "dWx", {s.D, s.H});
  T* pdwh = out_ptr<T>(dwh, "dWh", {s.H, s.H});
  T* pdb = out_ptr<T>(db, "db", {s.H});
  T* pdh0 = out_ptr<T>(dh0, "dh0", {s.N, s.H});
  py::gil_scoped_release nogil;
  cpu::rnn_backward<T>(px, pwx, pwh, ph0, phs, pdhs, pdxs, pdwx, pdwh, pdb, pdh0, s.N, s.L, s.D, s.H,
                       cpu::num_threads());
}

template <typename T>
void lstm_forward_py(py::array xs, py::array wx, py::array wh, py::array b, py::array h0, py::array c0,
                     py::array hs, py::array cs, py::array gates) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 4 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* pb = in_ptr<T>(b, "b", {G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  const T* pc0 = in_ptr<T>(c0, "c0", {s.N, s.H});
  T* phs = out_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  T* pcs = out_ptr<T>(cs, "cs", {s.N, s.L, s.H});
  T* pg = out_ptr<T>(gates, "gates", {s.N, s.L, G});
  py::gil_scoped_release nogil;
  cpu::lstm_forward<T>(px, pwx, pwh, pb, ph0, pc0, phs, pcs, pg, s.N, s.L, s.D, s.H, cpu::num_threads());
}

template <typename T>
void lstm_backward_py(py::array xs, py::array wx, py::array wh, py::array h0, py::array c0, py::array hs,
                      py::array cs, py::array gates, py::array dhs, py::array dc_last, py::array dxs,
                      py::array dwx, py::array dwh, py::array db, py::array dh0, py::array dc0) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 4 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  const T* pc0 = in_ptr<T>(c0, "c0", {s.N, s.H});
  const T* phs = in_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  const T* pcs = in_ptr<T>(cs, "cs", {s.N, s.L, s.H});
  const T* pg = in_ptr<T>(gates, "gates", {s.N, s.L, G});
  const T* pdhs = in_ptr<T>(dhs, "dhs", {s.N, s.L, s.H});
  const T* pdcl = in_ptr<T>(dc_last, "dc_last", {s.N, s.H});
  T* pdxs = out_ptr<T>(dxs, "dxs", {s.N, s.L, s.D});
  T* pdwx = out_ptr<T>(dwx, "dWx", {s.D, G});
  T* pdwh = out_ptr<T>(dwh, "dWh", {s.H, G});
  T* pdb = out_ptr<T>(db, "db", {G});
  T* pdh0 = out_ptr<T>(dh0, "dh0", {s.N, s.H});
  T* pdc0 = out_ptr<T>(dc0, "dc0", {s.N, s.H});
  py::gil_scoped_release nogil;
  cpu::lstm_backward<T>(px, pwx, pwh, ph0, pc0, phs, pcs, pg, pdhs, pdcl, pdxs, pdwx, pdwh, pdb, pdh0, pdc0,
                        s.N, s.L, s.D, s.H, cpu::num_threads());
}

template <typename T>
void gru_forward_py(py::array xs, py::array wx, py::array wh, py::array b, py::array h0, py::array hs,
                    py::array gates, py::array rh) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 3 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* pb = in_ptr<T>(b, "b", {G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  T* phs = out_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  T* pg = out_ptr<T>(gates, "gates", {s.N, s.L, G});
  T* prh = out_ptr<T>(rh, "rh", {s.N, s.L, s.H});
  py::gil_scoped_release nogil;
  cpu::gru_forward<T>(px, pwx, pwh, pb, ph0, phs, pg, prh, s.N, s.L, s.D, s.H, cpu::num_threads());
}

template <typename T>
void gru_backward_py(py::array xs, py::array wx, py::array wh, py::array h0, py::array hs, py::array gates,
                     py::array rh, py::array dhs, py::array dxs, py::array dwx, py::array dwh, py::array db,
                     py::array dh0) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 3 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  const T* phs = in_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  const T* pg = in_ptr<T>(gates, "gates", {s.N, s.L, G});
  const T* prh = in_ptr<T>(rh, "rh", {s.N, s.L, s.H});
  const T* pdhs = in_ptr<T>(dhs, "dhs", {s.N, s.L, s.H});
  T* pdxs = out_ptr<T>(dxs, "dxs", {s.N, s.L, s.D});
  T* pdwx = out_ptr<T>(dwx, "dWx", {s.D, G});
  T* pdwh = out_ptr<T>(dwh, "dWh", {s.H, G});
  T* pdb = out_ptr<T>(db, "db", {G});
  T* pdh0 = out_ptr<T>(dh0, "dh0", {s.N, s.H});
  py::gil_scoped_release nogil;
  cpu::gru_backward<T>(px, pwx, pwh, ph0, phs, pg, prh, pdhs, pdxs, pdwx, pdwh, pdb, pdh0, s.N, s.L, s.D, s.H,
                       cpu::num_threads());
}

template <typename T>
void gru_reset_after_forward_py(py::array xs, py::array wx, py::array wh, py::array bx, py::array bh,
                                py::array h0, py::array hs, py::array gates, py::array rec) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 3 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* pbx = in_ptr<T>(bx, "bx", {G});
  const T* pbh = in_ptr<T>(bh, "bh", {G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  T* phs = out_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  T* pg = out_ptr<T>(gates, "gates", {s.N, s.L, G});
  T* prec = out_ptr<T>(rec, "rec", {s.N, s.L, s.H});
  py::gil_scoped_release nogil;
  cpu::gru_reset_after_forward<T>(px, pwx, pwh, pbx, pbh, ph0, phs, pg, prec, s.N, s.L, s.D, s.H,
                                  cpu::num_threads());
}

template <typename T>
void gru_reset_after_backward_py(py::array xs, py::array wx, py::array wh, py::array h0, py::array hs,
                                 py::array gates, py::array rec, py::array dhs, py::array dxs, py::array dwx,
                                 py::array dwh, py::array dbx, py::array dbh, py::array dh0) {
  const Seq s = seq_dims(xs, wh);
  const i64 G = 3 * s.H;
  const T* px = in_ptr<T>(xs, "xs", {s.N, s.L, s.D});
  const T* pwx = in_ptr<T>(wx, "Wx", {s.D, G});
  const T* pwh = in_ptr<T>(wh, "Wh", {s.H, G});
  const T* ph0 = in_ptr<T>(h0, "h0", {s.N, s.H});
  const T* phs = in_ptr<T>(hs, "hs", {s.N, s.L, s.H});
  const T* pg = in_ptr<T>(gates, "gates", {s.N, s.L, G});
  const T* prec = in_ptr<T>(rec, "rec", {s.N, s.L, s.H});
  const T* pdhs = in_ptr<T>(dhs, "dhs", {s.N, s.L, s.H});
  T* pdxs = out_ptr<T>(dxs, "dxs", {s.N, s.L, s.D});
  T* pdwx = out_ptr<T>(dwx, "dWx", {s.D, G});
  T* pdwh = out_ptr<T>(dwh, "dWh", {s.H, G});
  T* pdbx = out_ptr<T>(dbx, "dbx", {G});
  T* pdbh = out_ptr<T>(dbh, "dbh", {G});
  T* pdh0 = out_ptr<T>(dh0, "dh0", {s.N, s.H});
  py::gil_scoped_release nogil;
  cpu::gru_reset_after_backward<T>(px, pwx, pwh, ph0, phs, pg, prec, pdhs, pdxs, pdwx, pdwh, pdbx, pdbh, pdh0,
                                   s.N, s.L, s.D, s.H, cpu::num_threads());
}

}  // namespace

void bind_rnn(py::module_& m) {
  FC_DEF_ALL(m, "rnn_forward", rnn_forward_py, "hs = tanh(x_t Wx + h_{t-1} Wh + b) over all steps.",
             py::arg("xs"), py::arg("Wx"), py::arg("Wh"), py::arg("b"), py::arg("h0"), py::arg("hs"));
  FC_DEF_ALL(m, "rnn_backward", rnn_backward_py, "Backward through time of rnn_forward.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("h0"), py::arg("hs"), py::arg("dhs"), py::arg("dxs"),
             py::arg("dWx"), py::arg("dWh"), py::arg("db"), py::arg("dh0"));
  FC_DEF_ALL(m, "lstm_forward", lstm_forward_py, "LSTM (gates f, g, i, o) over all steps.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("b"), py::arg("h0"), py::arg("c0"), py::arg("hs"),
             py::arg("cs"), py::arg("gates"));
  FC_DEF_ALL(m, "lstm_backward", lstm_backward_py, "Backward through time of lstm_forward.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("h0"), py::arg("c0"), py::arg("hs"), py::arg("cs"),
             py::arg("gates"), py::arg("dhs"), py::arg("dc_last"), py::arg("dxs"), py::arg("dWx"),
             py::arg("dWh"), py::arg("db"), py::arg("dh0"), py::arg("dc0"));
  FC_DEF_ALL(m, "gru_forward", gru_forward_py, "GRU (gates z, r, h) over all steps.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("b"), py::arg("h0"), py::arg("hs"), py::arg("gates"),
             py::arg("rh"));
  FC_DEF_ALL(m, "gru_backward", gru_backward_py, "Backward through time of gru_forward.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("h0"), py::arg("hs"), py::arg("gates"), py::arg("rh"),
             py::arg("dhs"), py::arg("dxs"), py::arg("dWx"), py::arg("dWh"), py::arg("db"),
             py::arg("dh0"));
  FC_DEF_ALL(m, "gru_reset_after_forward", gru_reset_after_forward_py,
             "Keras 3's GRU (reset_after=True; gates z, r, h) over all steps.", py::arg("xs"),
             py::arg("Wx"), py::arg("Wh"), py::arg("bx"), py::arg("bh"), py::arg("h0"), py::arg("hs"),
             py::arg("gates"), py::arg("rec"));
  FC_DEF_ALL(m, "gru_reset_after_backward", gru_reset_after_backward_py,
             "Backward through time of gru_reset_after_forward.", py::arg("xs"), py::arg("Wx"),
             py::arg("Wh"), py::arg("h0"), py::arg("hs"), py::arg("gates"), py::arg("rec"), py::arg("dhs"),
             py::arg("dxs"), py::arg("dWx"), py::arg("dWh"), py::arg("dbx"), py::arg("dbh"),
             py::arg("dh0"));
}

}  // namespace fastconv::bind
