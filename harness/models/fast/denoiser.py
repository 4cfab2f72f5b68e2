"""The fast denoiser: :class:`~harness.models.denoiser.GCNDiff` with a node-major forward.

Same parameters, construction order and state_dict as the readable model (the constructor is
its); the forward runs the blocks as the node-major functions of :mod:`harness.models.fast.graph`
and :mod:`harness.models.fast.lifter`. The CCE input and readout are concatenations along the
node axis, which node-major is the leading one; CAG's ``fc3`` (a Linear over the node axis) is
one GEMM ``W (2J, J) @ guide (J, B*C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.models.denoiser import GCNDiff, ResChebGCDiff
from harness.models.fast.graph import (Stacks, cheb_conv_nm, cheb_stack_buffers, graph_conv_nm,
                                       register_cheb_stacks)
from harness.models.fast.lifter import attention_layer_nm

__all__ = ["FastGCNDiff", "res_cheb_gc_diff_nm"]


def res_cheb_gc_diff_nm(block: ResChebGCDiff, x: torch.Tensor, temb_act: torch.Tensor, g: Stacks) -> torch.Tensor:
    """:class:`ResChebGCDiff` on node-major ``x`` ``(N*B, C)``; ``temb_act`` ``(B, emd_dim)``
    (the time embedding after swish); ``g`` the graph's :func:`~harness.models.fast.graph.cheb_stacks`."""
    out = graph_conv_nm(block.gconv1, x, g)
    b = temb_act.shape[0]
    out = (out.view(-1, b, out.shape[-1]) + block.temb_proj(temb_act)).view(out.shape)
    return x + graph_conv_nm(block.gconv2, out, g)


class FastGCNDiff(GCNDiff):
    """:class:`~harness.models.denoiser.GCNDiff` with the node-major forward, plus the
    non-persistent ``cheb_t12``, ``cheb_t12_h``, ``cheb_t12t`` (and ``cheb_ctx_*`` with CAG)."""

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, cce: bool = False, cag: bool = False,
                 adj_cross: torch.Tensor | None = None):
        super().__init__(adj, hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout,
                         cce=cce, cag=cag, adj_cross=adj_cross)
        register_cheb_stacks(self, "cheb", adj_cross if cce else adj)
        if cag:
            register_cheb_stacks(self, "cheb_ctx", adj)

    def forward(self, x: torch.Tensor, t: torch.Tensor, pose_2d: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, pose_2d)
        j = self.num_joints
        b = x.shape[0]
        temb_act = F.silu(self.temb(t))
        g = cheb_stack_buffers(self, "cheb")
        n = 2 * j if self.cce else j

        xn = x.transpose(0, 1)                                      # (J, B, 5) node-major view
        if self.cce:  # nodes 0..J-1: fc1(u, v); nodes J..2J-1: (x, y, z)
            h = torch.cat((self.fc1(xn[..., :2]), xn[..., 2:]), dim=0).reshape(n * b, 3)
        else:
            h = xn.reshape(n * b, 5)
        out = cheb_conv_nm(self.gconv_input, h, g)                 # (N*B, hid)

        if not self.cag:
            for atten, gconv in zip(self.atten_layers, self.gconv_layers):
                out = res_cheb_gc_diff_nm(gconv, attention_layer_nm(atten, out, n), temb_act, g)
        else:
            p2 = pose_2d.transpose(0, 1).reshape(j * b, 2)
            guide = cheb_conv_nm(self.gconv_input_t, p2, cheb_stack_buffers(self, "cheb_ctx"))
            if self.cce:  # fc3 over the node axis, J -> 2J: one GEMM on the node-major rows
                w = self.fc3.weight.to(guide.dtype)
                guide = torch.addmm(self.fc3.bias.to(guide.dtype).view(-1, 1), w,
                                    guide.view(j, -1)).view(n * b, -1)
            out = out + guide
            last = self.n_layers - 1
            for i in range(self.n_layers):
                out = attention_layer_nm(self.atten_layers[i], out, n)
                guide = attention_layer_nm(self.atten_layers_t[i], guide, n)
                out = out + guide
                if i == last:  # the guide stream stops here (its last graph layer is unused)
                    out = res_cheb_gc_diff_nm(self.gconv_layers[i], out, temb_act, g)
                    break
                guide = guide + out
                out = res_cheb_gc_diff_nm(self.gconv_layers[i], out, temb_act, g)
                guide = res_cheb_gc_diff_nm(self.gconv_layers_t[i], guide, temb_act, g)

        out = cheb_conv_nm(self.gconv_output, out, g).view(n, b, -1)
        if self.cce:  # read out: each joint's 2D-node and 3D-node outputs side by side -> 5
            out = self.fc2(torch.cat((out[:j], out[j:]), dim=-1))
        return out.transpose(0, 1).contiguous()
