"""Entry points for the frameworks people train with (Keras, Lightning, Hugging Face, …).

Each framework has its own module here, which imports its framework only when used; this
package imports none of them, so ``import lrkit`` never pulls in a training framework.
"""
