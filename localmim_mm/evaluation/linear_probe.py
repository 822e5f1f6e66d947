"""Linear probe on frozen features: standardised features -> one linear layer."""
import torch
import torch.nn.functional as F


def linear_probe_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor,
                          test_feats: torch.Tensor, test_labels: torch.Tensor,
                          epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4,
                          batch_size: int = 256, seed: int = 0, device='cpu') -> float:
    """Train a linear classifier on ``train_feats`` and return its top-1 accuracy (0..1) on
    ``test_feats``.

    Features are standardised with the training mean and std (MAE's linear probe puts a
    BatchNorm without affine in front of the classifier; with frozen features that is the same
    thing). AdamW, cosine learning-rate decay over ``epochs``, cross-entropy. The probe trains on
    ``device``; its initialisation and batch order come from a CPU generator seeded by ``seed``,
    so they do not depend on the device.
    """
    if len(train_feats) != len(train_labels) or len(test_feats) != len(test_labels):
        raise ValueError('linear_probe_accuracy: every feature set needs one label per row')
    generator = torch.Generator().manual_seed(seed)
    train_feats, test_feats = train_feats.float().to(device), test_feats.float().to(device)
    train_labels, test_labels = train_labels.to(device), test_labels.to(device)
    mean, std = train_feats.mean(0), train_feats.std(0) + 1e-6
    x_train, x_test = (train_feats - mean) / std, (test_feats - mean) / std
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    classifier = torch.nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        classifier.weight.normal_(0, 0.01, generator=generator)
        classifier.bias.zero_()
    classifier.to(device)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(x_train) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(classifier(x_train[idx]), train_labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    with torch.no_grad():
        return (classifier(x_test).argmax(1) == test_labels).float().mean().item()
