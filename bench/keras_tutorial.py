"""The Keras tutorial's MNIST convnet, unchanged but for its import lines (acceptance 1 of issue 17).

Original imports (TensorFlow's Keras):

    import tensorflow as tf
    from tensorflow.keras.models import Sequential
    from tensorflow.keras.layers import Dense, Dropout, Flatten, Conv2D, MaxPooling2D
    from tensorflow.keras.datasets import mnist

MNIST cannot be downloaded here, so Fashion-MNIST stands in for it (same shapes, a harder task).
Run: ``time python bench/keras_tutorial.py``.
"""
# ruff: noqa: I001  (the tutorial's import order)

import fastconv as tf
from fastconv.keras.models import Sequential
from fastconv.keras.layers import Dense, Dropout, Flatten, Conv2D, MaxPooling2D
from fastconv.keras.datasets import fashion_mnist as mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train.reshape(x_train.shape[0], 28, 28, 1).astype('float32') / 255
x_test = x_test.reshape(x_test.shape[0], 28, 28, 1).astype('float32') / 255
y_train = tf.keras.utils.to_categorical(y_train, 10)
y_test = tf.keras.utils.to_categorical(y_test, 10)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=(28, 28, 1)))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(10, activation='softmax'))
model.summary()

model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=5, batch_size=64)
test_loss, test_acc = model.evaluate(x_test, y_test)
print('Test loss:', test_loss)
print('Test accuracy:', test_acc)
