"""Generators of user activity (users, wishlist, ratings) that keep the catalog alive."""
