//! RediSearch index definitions, from its module aux data (`ft_index0`). Not read yet.
