"""Straightforward loop implementations of the contrastive losses, written from the
formulas of the specification, used only to check the vectorised ones."""
import math

import torch
import torch.nn.functional as F


def _unit(x):
    return F.normalize(x.double(), dim=1)


def loop_loss(z, y, temperature, variant, beta=0.1, prototypes=None, queue_z=None, queue_y=None):
    """One anchor, one key, one label at a time. Returns a float64 scalar tensor."""
    z = _unit(z)
    y = y.double()
    keys, key_y = [z[j] for j in range(len(z))], [y[j] for j in range(len(z))]
    if queue_z is not None:
        qz = _unit(queue_z)
        keys += [qz[j] for j in range(len(qz))]
        key_y += [queue_y[j].double() for j in range(len(qz))]
    protos = [] if prototypes is None else list(_unit(prototypes))
    L = y.shape[1]
    balanced = variant == "msc"
    g_inst = beta if balanced else 1.0
    B = len(z)
    losses = []
    for i in range(B):
        labels_i = {c for c in range(L) if y[i, c] == 1}
        sim = lambda v: torch.dot(z[i], v) / temperature
        denom = 0.0
        for k in range(len(keys)):
            if k != i:
                denom = denom + g_inst * torch.exp(sim(keys[k]))
        for c in range(len(protos)):
            denom = denom + torch.exp(sim(protos[c]))
        log_p = lambda v: sim(v) - torch.log(denom)
        if balanced:
            if not labels_i:
                continue
            total = 0.0
            for c in labels_i:
                terms, norm = 0.0, 0.0
                for l in range(len(keys)):
                    if l == i or key_y[l][c] != 1:
                        continue
                    labels_l = {d for d in range(L) if key_y[l][d] == 1}
                    f = 1.0 / len(labels_i | labels_l)
                    terms = terms + f * log_p(keys[l])
                    norm += f
                terms = terms + 1.0 * log_p(protos[c])
                norm += 1.0
                total = total + terms / norm
            losses.append(-total / len(labels_i))
        else:
            terms, norm = 0.0, 0.0
            for j in range(len(keys)):
                if j == i:
                    continue
                labels_j = {d for d in range(L) if key_y[j][d] == 1}
                union = labels_i | labels_j
                w = len(labels_i & labels_j) / len(union) if union else 0.0
                if w > 0:
                    terms = terms + w * log_p(keys[j])
                    norm += w
            for c in range(len(protos)):
                union = labels_i | {c}
                w = len(labels_i & {c}) / len(union)
                if w > 0:
                    terms = terms + w * log_p(protos[c])
                    norm += w
            if norm > 0:
                losses.append(-terms / norm)
    if not losses:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([torch.as_tensor(l) for l in losses]).mean()


def supcon_one_view(z, classes, temperature):
    """SupCon (Khosla et al. 2020), one view, base temperature = temperature."""
    z = _unit(z)
    B = len(z)
    out = []
    for i in range(B):
        others = [a for a in range(B) if a != i]
        log_den = torch.logsumexp(torch.stack([z[i] @ z[a] / temperature for a in others]), 0)
        pos = [p for p in others if classes[p] == classes[i]]
        out.append(-sum(z[i] @ z[p] / temperature - log_den for p in pos) / len(pos))
    return torch.stack(out).mean()


def dense_msc_loss(z, y, prototypes, temperature=0.1, beta=0.1, queue_z=None, queue_y=None):
    """L_MSC through an explicit (B, |H|, L) positive tensor: the formulation the
    vectorised loss avoids. Same values; memory grows as B * |H| * L."""
    z = F.normalize(z.float(), dim=1)
    A = y.float()
    keys, key_y = [z], [A]
    if queue_z is not None and len(queue_z):
        keys.append(F.normalize(queue_z.float(), dim=1))
        key_y.append(queue_y.float())
    Z_H, Y_H = torch.cat(keys), torch.cat(key_y)
    C = F.normalize(prototypes.float(), dim=1)
    B, M = len(z), len(Z_H)
    off = torch.ones(B, M, dtype=torch.bool)
    off[:, :B].fill_diagonal_(False)
    logits = z @ Z_H.T / temperature
    proto_logits = z @ C.T / temperature
    masked = logits.masked_fill(~off, float("-inf")) + math.log(beta)
    denom = torch.logsumexp(torch.cat([masked, proto_logits], 1), 1, keepdim=True)
    log_p = torch.where(off, logits - denom, torch.zeros_like(logits))
    pos = A[:, None, :] * Y_H[None, :, :] * off[:, :, None]             # (B, M, L)
    union = A.sum(1)[:, None] + Y_H.sum(1)[None, :] - A @ Y_H.T
    f = pos / union.clamp_min(1)[:, :, None]                            # (B, M, L)
    N = f.sum(1) + 1                                                    # (B, L)
    per_label = ((f * log_p[:, :, None]).sum(1) + (proto_logits - denom)) / N
    n = A.sum(1)
    valid = n > 0
    return -((per_label * A).sum(1)[valid] / n[valid]).mean()


def mulsupcon_loop(z, y, temperature, queue_z=None, queue_y=None):
    """MulSupCon (Zhang and Wu, AAAI 2024) one (document, label) anchor at a time:
    the mean over anchors with a positive of -1/|P| sum_p log softmax over the other
    keys (batch without the anchor, then the queue). Returns a float64 scalar tensor."""
    z = _unit(z)
    y = y.double()
    keys, key_y = [z[j] for j in range(len(z))], [y[j] for j in range(len(z))]
    if queue_z is not None:
        qz = _unit(queue_z)
        keys += [qz[j] for j in range(len(qz))]
        key_y += [queue_y[j].double() for j in range(len(qz))]
    terms = []
    for i in range(len(z)):
        others = [a for a in range(len(keys)) if a != i]
        if not others:
            continue
        sims = {a: torch.dot(z[i], keys[a]) / temperature for a in others}
        log_den = torch.log(sum(torch.exp(sims[a]) for a in others))
        for c in range(y.shape[1]):
            if y[i, c] != 1:
                continue
            positives = [p for p in others if key_y[p][c] == 1]
            if not positives:
                continue
            terms.append(-sum(sims[p] - log_den for p in positives) / len(positives))
    if not terms:
        return torch.zeros((), dtype=torch.float64)
    return sum(terms) / len(terms)


def db_loop(logits, y, class_counts, n_train, alpha, beta, mu, kappa, lam, focal, gamma, focal_alpha):
    """Distribution-balanced loss (Wu et al. 2020; Huang et al. 2021) one element at a
    time, written from the formulas in float64: re-balanced weight
    alpha + sigmoid(beta (r - mu)) with r = P^C / P^I, negative-tolerant logistic loss
    on z + kappa * log(p / (1 - p)), optional focal factors; mean over all elements."""
    logits = logits.double()
    N, L = logits.shape
    total = 0.0
    for i in range(N):
        labels = [c for c in range(L) if y[i, c] == 1]
        p_inst = sum(1.0 / float(class_counts[c]) for c in labels)
        for c in range(L):
            n_c = float(class_counts[c])
            if labels:
                r_hat = alpha + 1.0 / (1.0 + math.exp(-beta * ((1.0 / n_c) / p_inst - mu)))
            else:  # P^I = 0: r is infinite, sigmoid -> 1 (1/2 when beta = 0)
                r_hat = alpha + (1.0 if beta > 0 else 0.5)
            x = logits[i, c] + kappa * math.log(n_c / (n_train - n_c))
            if y[i, c] == 1:
                term = r_hat * torch.log1p(torch.exp(-x))
                if focal:
                    term = term * focal_alpha * (1 - 1 / (1 + torch.exp(-x))) ** gamma
            else:
                term = r_hat / lam * torch.log1p(torch.exp(lam * x))
                if focal:
                    term = term * (1 - focal_alpha) * (1 / (1 + torch.exp(-lam * x))) ** gamma
            total = total + term
    return total / (N * L)
