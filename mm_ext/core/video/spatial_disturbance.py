"""DSM spatial local disturbance: warp every frame of a clip by one smooth warp.

`Enhancing Unsupervised Video Representation Learning by Decoupling the Scene
and the Motion <https://arxiv.org/abs/2009.05757>`_, Sec. 3 ("spatial local
disturbance"): the scene is broken while the motion pattern (the same warp in
every frame) is kept. Two warps are provided, both batched and differentiable
w.r.t. the input through ``torch.nn.functional.grid_sample``:

* :func:`tps_warp` - thin-plate spline on a ``g x g`` control grid whose source
  points are jittered by U(-jitter, jitter) (the paper's figure; default).
* :func:`push_warp` - the released "local push" warp, 1-3 smooth local pushes,
  vectorised as a per-pixel displacement field (the release loops over pixels
  in Python).

Coordinates are normalised to [-1, 1] with ``align_corners=True`` (pixel
centres at -1 and +1 on the borders), so a zero displacement returns the input.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['tps_control_points', 'tps_solve', 'tps_transform', 'tps_warp',
           'push_displacement', 'push_warp', 'random_push_params', 'warp_clips']


def tps_control_points(grid_size: int = 5, device=None, dtype=torch.float32) -> torch.Tensor:
    """Regular ``grid_size x grid_size`` grid over [-1, 1]^2.

    Returns:
        Tensor: shape (N, 2), N = grid_size**2, columns (x, y), x varying fastest.
    """
    if grid_size < 2:
        raise ValueError(f'tps: grid_size must be >= 2, got {grid_size}')
    lin = torch.linspace(-1.0, 1.0, grid_size, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(lin, lin, indexing='ij')
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _tps_kernel(d2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 written on squared distances, with U(0) = 0."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-20)), torch.zeros_like(d2))


def _basis(points: torch.Tensor, ctrl: torch.Tensor) -> torch.Tensor:
    """TPS basis rows [U(|p - c_1|), ..., U(|p - c_N|), 1, x, y]: (M, N + 3)."""
    d2 = ((points[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
    ones = torch.ones(points.shape[0], 1, dtype=points.dtype, device=points.device)
    return torch.cat([_tps_kernel(d2), ones, points], dim=1)


def tps_solve(ctrl: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Coefficients of the thin-plate spline that interpolates ``values`` at ``ctrl``.

    Solves ``[[K, P], [P^T, 0]] @ coef = [values; 0]`` with ``K_ij = U(|c_i - c_j|)``,
    ``P = [1, x, y]`` (Bookstein 1989), batched over the leading dim of ``values``.

    Args:
        ctrl (Tensor): control points, shape (N, 2).
        values (Tensor): target values at the control points, shape (B, N, D).

    Returns:
        Tensor: coefficients, shape (B, N + 3, D) (N kernel weights, then the
        affine part for 1, x, y).
    """
    n = ctrl.shape[0]
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    p = torch.cat([torch.ones(n, 1, dtype=ctrl.dtype, device=ctrl.device), ctrl], 1)
    lmat = torch.zeros(n + 3, n + 3, dtype=ctrl.dtype, device=ctrl.device)
    lmat[:n, :n] = _tps_kernel(d2)
    lmat[:n, n:] = p
    lmat[n:, :n] = p.t()
    rhs = torch.cat([values, values.new_zeros(values.shape[0], 3, values.shape[2])], 1)
    return torch.linalg.solve(lmat.expand(values.shape[0], -1, -1), rhs)


def tps_transform(points: torch.Tensor, ctrl: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Evaluate a TPS at ``points``.

    Args:
        points (Tensor): shape (M, 2).
        ctrl (Tensor): control points of the spline, shape (N, 2).
        coef (Tensor): coefficients from :func:`tps_solve`, shape (B, N + 3, D).

    Returns:
        Tensor: shape (B, M, D).
    """
    return torch.matmul(_basis(points, ctrl), coef)


@lru_cache(maxsize=16)
def _tps_operator(grid_size: int, h: int, w: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Precomputed linear map from source control points (N, 2) to the sampling grid (H*W, 2)."""
    ctrl = tps_control_points(grid_size, device='cpu', dtype=torch.float64)
    n = ctrl.shape[0]
    eye = torch.eye(n, dtype=torch.float64)[None].expand(1, n, n).reshape(1, n, n)
    coef = tps_solve(ctrl, eye)[0]  # (N+3, N): coefficients for unit values
    ys = torch.linspace(-1.0, 1.0, h, dtype=torch.float64)
    xs = torch.linspace(-1.0, 1.0, w, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    pix = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    op = _basis(pix, ctrl) @ coef  # (H*W, N)
    return op.to(device=device, dtype=dtype)


def tps_warp(clips: torch.Tensor,
             grid_size: int = 5,
             jitter: float = 0.1,
             per_sample: bool = False,
             source_points: Optional[torch.Tensor] = None,
             generator: Optional[torch.Generator] = None,
             mode: str = 'bilinear',
             padding_mode: str = 'border') -> Tuple[torch.Tensor, torch.Tensor]:
    """Thin-plate-spline warp, the same warp for every frame of a clip.

    The target control points form a regular ``grid_size`` x ``grid_size`` grid
    over [-1, 1]^2; the source points are the grid plus U(-jitter, jitter). Each
    output pixel p samples the input at ``f(p)``, where f is the TPS with
    ``f(target_i) = source_i``.

    Args:
        clips (Tensor): shape (B, C, T, H, W).
        grid_size (int): control grid side. Defaults to 5.
        jitter (float): half-width of the uniform jitter in normalised units
            (the image spans 2). Defaults to 0.1.
        per_sample (bool): one warp per clip instead of one per batch (official:
            one per batch). Defaults to False.
        source_points (Tensor, optional): explicit source points, shape (N, 2) or
            (B, N, 2); overrides the random draw.
        generator (torch.Generator, optional): random generator.
        mode (str): grid_sample interpolation. Defaults to 'bilinear'.
        padding_mode (str): grid_sample padding. Defaults to 'border'.

    Returns:
        tuple[Tensor, Tensor]: the warped clips (B, C, T, H, W) and the source
        points used, shape (B, N, 2).
    """
    if clips.dim() != 5:
        raise ValueError(f'tps_warp: clips must be (B, C, T, H, W), got {tuple(clips.shape)}')
    b, c, t, h, w = clips.shape
    n = grid_size * grid_size
    ctrl = tps_control_points(grid_size, device=clips.device, dtype=clips.dtype)
    if source_points is None:
        k = b if per_sample else 1
        noise = (torch.rand(k, n, 2, generator=generator) * 2 - 1) * jitter
        source_points = ctrl[None] + noise.to(device=clips.device, dtype=clips.dtype)
    source_points = source_points.to(device=clips.device, dtype=clips.dtype)
    if source_points.dim() == 2:
        source_points = source_points[None]
    if source_points.shape[-2:] != (n, 2):
        raise ValueError(f'tps_warp: source_points must be (B, {n}, 2) for grid_size={grid_size}, '
                         f'got {tuple(source_points.shape)}')
    source_points = source_points.expand(b, n, 2)
    op = _tps_operator(grid_size, h, w, str(clips.device), clips.dtype)
    grid = torch.matmul(op, source_points).view(b, h, w, 2)  # (B, H, W, 2) as (x, y)
    return warp_clips(clips, grid, mode, padding_mode), source_points


def warp_clips(clips: torch.Tensor, grid: torch.Tensor, mode: str = 'bilinear',
               padding_mode: str = 'border') -> torch.Tensor:
    """Sample every frame of each clip at the clip's grid.

    Args:
        clips (Tensor): shape (B, C, T, H, W).
        grid (Tensor): sampling locations (x, y) in [-1, 1], shape (B, H, W, 2);
            align_corners=True convention.

    Returns:
        Tensor: shape (B, C, T, H, W).
    """
    b, c, t, h, w = clips.shape
    frames = clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    g = grid[:, None].expand(b, t, h, w, 2).reshape(b * t, h, w, 2)
    out = F.grid_sample(frames, g, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.view(b, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()


def random_push_params(num: int = 1, size: int = 224, ref_size: int = 224,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw the released push-warp parameters, scaled from a ``ref_size`` image.

    Per draw: R ~ U{1, 2, 3} pushes, each with centre (cx, cy) ~ U[60, 140)^2 px
    and shift (dx, dy) ~ U[10, 20)^2 px (constants of the release for 224 px,
    multiplied by ``size / ref_size``).

    Returns:
        Tensor: shape (num, 3, 5): rows (cx, cy, dx, dy, active) in pixels of the
        target size; inactive rows (active = 0) are padding.
    """
    s = size / ref_size
    r = torch.randint(1, 4, (num,), generator=generator)
    cen = (60 + 80 * torch.rand(num, 3, 2, generator=generator)) * s
    sh = (10 + 10 * torch.rand(num, 3, 2, generator=generator)) * s
    active = (torch.arange(3)[None] < r[:, None]).float()
    return torch.cat([cen, sh, active[..., None]], -1)


def push_displacement(params: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Displacement (in pixels) of one local push at every pixel.

    Pixel p (x right, y down) inside the window |x - cx| < 3 |dx|, |y - cy| < 3 |dy|
    samples the source at ``p - h(p) * s`` with ``h = 0.5 / (3 (d / |s|)^4 + 1)``,
    ``d = |p - (c + s)|``; outside the window the displacement is 0.

    Args:
        params (Tensor): shape (B, 4), rows (cx, cy, dx, dy) in pixels.
        h (int): image height. w (int): image width.

    Returns:
        Tensor: source offsets (B, H, W, 2) as (offset_x, offset_y) in pixels.
    """
    dev, dt = params.device, params.dtype
    ys = torch.arange(h, device=dev, dtype=dt).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=dt).view(1, 1, w)
    cx, cy, dx, dy = (params[:, i].view(-1, 1, 1) for i in range(4))
    norm = torch.sqrt(dx * dx + dy * dy)
    d = torch.sqrt((xs - cx - dx) ** 2 + (ys - cy - dy) ** 2)
    hh = 0.5 / (3 * (d / norm) ** 4 + 1)
    inside = ((xs - cx).abs() < 3 * dx.abs()) & ((ys - cy).abs() < 3 * dy.abs())
    hh = hh * inside.to(dt)
    return torch.stack([-hh * dx, -hh * dy], -1)


def push_warp(clips: torch.Tensor,
              params: Optional[torch.Tensor] = None,
              per_sample: bool = False,
              ref_size: int = 224,
              generator: Optional[torch.Generator] = None,
              mode: str = 'bilinear') -> Tuple[torch.Tensor, torch.Tensor]:
    """The released local push warp, vectorised (1-3 sequential pushes).

    Each active push is applied to the result of the previous one, as in the
    release; each is one ``grid_sample`` over all frames of the batch.

    Args:
        clips (Tensor): shape (B, C, T, H, W).
        params (Tensor, optional): push parameters (P, 3, 5) from
            :func:`random_push_params` with P = 1 or B; drawn when omitted.
        per_sample (bool): one draw per clip instead of one per batch (official:
            per batch). Defaults to False.
        ref_size (int): image size the release's pixel constants refer to; the
            constants are scaled by ``min(H, W) / ref_size``. Defaults to 224.
        generator (torch.Generator, optional): random generator.
        mode (str): grid_sample interpolation. Defaults to 'bilinear'.

    Returns:
        tuple[Tensor, Tensor]: warped clips (B, C, T, H, W) and params (B, 3, 5).
    """
    if clips.dim() != 5:
        raise ValueError(f'push_warp: clips must be (B, C, T, H, W), got {tuple(clips.shape)}')
    b, c, t, h, w = clips.shape
    if params is None:
        params = random_push_params(b if per_sample else 1, min(h, w), ref_size, generator)
    params = params.to(device=clips.device, dtype=clips.dtype)
    if params.dim() != 3 or params.shape[1:] != (3, 5) or params.shape[0] not in (1, b):
        raise ValueError(f'push_warp: params must be (1 or B, 3, 5), got {tuple(params.shape)}')
    params = params.expand(b, 3, 5)
    ys = torch.arange(h, device=clips.device, dtype=clips.dtype)
    xs = torch.arange(w, device=clips.device, dtype=clips.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    base = torch.stack([gx, gy], -1)[None]  # (1, H, W, 2) pixels
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=clips.device,
                         dtype=clips.dtype)
    out = clips
    for i in range(3):
        active = params[:, i, 4] > 0
        if not bool(active.any()):
            break
        disp = push_displacement(params[:, i, :4], h, w) * active.view(b, 1, 1, 1).to(clips.dtype)
        grid = (base + disp) * scale - 1
        out = warp_clips(out, grid, mode=mode, padding_mode='border')
    return out, params
